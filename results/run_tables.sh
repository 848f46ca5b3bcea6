#!/usr/bin/env bash
# How the committed results under results/ were produced (CPU, 2 cores). Rerunning skips finished runs, so
# this script also resumes after an interruption. Usage: results/run_tables.sh [SECTION|all] (sections below)
set -uo pipefail
cd "$(dirname "$0")/.."
LEANREC=${LEANREC:-.venv/bin/leanrec}
SEEDS=${SEEDS:-5}   # the issues ask for 5 seeds per table
EPOCHS=${EPOCHS:-10}   # cap on every method's epochs (early stopping usually ends sooner); recorded in each run
# Protocol 2 (docs/protocol.md): every training stage takes at least 100 optimizer steps (leanrec's default
# --min-steps). On the 10K-row Criteo and Avazu heads (8K training rows) batches are capped at 256 (31 steps an
# epoch, so the floor is ~3 epochs rather than 12 at batch 1024); MAXBS sets the cap per section.
MAXBS=${MAXBS:-}

BASELINES="lr fm fwfm dnn wide-deep deepfm ipnn xdeepfm dcnv2 autoint-plus fibinet finalmlp wukong rankmixer"
# reaction-dtf with its fusion losses off: the control that credits a DTF gain to fusion (CLAIMS.md R4)
REACTION="reaction-baseline reaction-er reaction-kd reaction-dtf reaction-dtf:alpha=0,beta=0,gamma=0 reaction-afe reaction"
LIGHTFMP="lightfmp lightfmp-deepfm lightfmp-wide-deep lightfmp-ipnn lightfmp-xdeepfm lightfmp:weight_transfer=false"
SSR="ssr-s ssr-d:b=8,d_v=64 ssr-s:b=8,d_v=128"
IRAZOR="irazor irazor-argmax"
SELECTORS="mi chi2 variance lasso pca autofield adafs optfs lpfs mvfs adafs-e2e mvfs-e2e
  mi:keep_ratio=0.25 mi:keep_ratio=0.75 lasso:keep_ratio=0.25 lasso:keep_ratio=0.75
  lpfs:keep_ratio=0.25 lpfs:keep_ratio=0.75"
FRAPPE_SELECTORS="mi mi:keep_ratio=0.25 mi:keep_ratio=0.75 lasso lasso:keep_ratio=0.25 lasso:keep_ratio=0.75
  lpfs lpfs:keep_ratio=0.25 lpfs:keep_ratio=0.75 chi2 variance pca autofield adafs optfs mvfs"

run() {  # run DATASET METHODS... (DATA: one --data override); retried because a crashed process resumes where it stopped
  local dataset=$1; shift
  local args=()
  for m in "$@"; do args+=(-m "$m"); done
  for attempt in 1 2 3; do
    "$LEANREC" run -d "$dataset" ${DATA:+--data "$DATA"} "${args[@]}" --seeds "$SEEDS" --max-epochs "$EPOCHS" ${MAXBS:+--max-batch-size $MAXBS} \
      --results-dir results --no-progress --threads "${THREADS:-1}" && return 0
    echo "attempt $attempt failed; resuming" >&2
  done
}

what=${1:-all}   # criteo | frappe | movielens | avazu | afe-options | criteo-extra | ssr-scaling | fg | fg-criteo | fg-rest | tables | all
#                  | tuned (issue 22; not part of `all`: hours of CPU) | truth (issue 21; not part of `all`: ~1-2 h)
#                  | claims-criteo | claims-avazu | claims-movielens | claims-ssr | ssr-scale | claims-ssr-d
#                  | ssr-scale-5m | claims-fg | claims-afe | claims-dense | claims-transfer
#                  | claims-irazor-fde | claims-dtf-control | ssr-scale-rivals | ssr-views | ssr-scale-teacher
#                  | ssr-scale-rivals-teacher | ssr-scale-teacher-5m
#                  (issue 21's claim runs; not part of `all`)
if [[ $what == criteo || $what == all ]]; then
  # each paper's core comparison first, then the rest of every table
  CORE="dnn deepfm lr fm reaction-baseline reaction lightfmp lightfmp-deepfm irazor irazor-argmax ssr-s mi lasso"
  MAXBS=256 run criteo $CORE
  MAXBS=256 run criteo $BASELINES $REACTION $LIGHTFMP $SSR $IRAZOR $SELECTORS
fi
if [[ $what == frappe || $what == all ]]; then  # 46K training rows
  # the seeds already run for the core subset first, then every paper table's remaining methods
  run frappe dnn deepfm dcnv2 reaction-baseline reaction irazor irazor-argmax ssr-s mi
  run frappe lr fm fwfm wide-deep ipnn xdeepfm autoint-plus finalmlp wukong rankmixer fibinet
  run frappe reaction-er reaction-kd reaction-dtf reaction-afe ssr-d:b=8,d_v=64
  run frappe $LIGHTFMP
  # D_S = 2K rows holds each of Frappe's 4K items ~0.5 times: on some seeds the item gate (the only field
  # informative on its own, negatives are sampled items) closes; the paper's pretraining-size sensitivity
  run frappe lightfmp:pretrain_rows=8000 lightfmp-deepfm:pretrain_rows=8000
  # the selection table over k (issue 7 asks for no seed count; the end-to-end variants ran on Criteo only)
  SEEDS=${SELECTOR_SEEDS:-3} run frappe $FRAPPE_SELECTORS
fi
if [[ $what == movielens || $what == all ]]; then
  run movielens-100k dnn deepfm lr fm reaction-baseline reaction lightfmp irazor mi
  SEEDS=${ML_BASELINE_SEEDS:-$SEEDS} run movielens-100k fwfm wide-deep ipnn dcnv2 xdeepfm autoint-plus finalmlp \
    wukong rankmixer fibinet
  run movielens-100k reaction-er reaction-kd reaction-dtf reaction-afe
  # the remaining rows of the SSR, i-Razor and Light-FMP tables
  SEEDS=${ML_EXTRA_SEEDS:-$SEEDS} run movielens-100k irazor-argmax ssr-d:b=8,d_v=64 ssr-s
  SEEDS=${ML_EXTRA_SEEDS:-$SEEDS} run movielens-100k $LIGHTFMP
fi
if [[ $what == avazu || $what == all ]]; then  # 10K-row head: each paper's core comparison
  MAXBS=256 run avazu dnn deepfm lr fm reaction-baseline reaction lightfmp lightfmp-deepfm irazor irazor-argmax ssr-s
fi
if [[ $what == afe-options || $what == all ]]; then  # AFE with our bias-corrected estimator and look-ahead
  MAXBS=256 run criteo reaction-afe:estimator=shuffle,lookahead=true reaction:estimator=shuffle,lookahead=true
fi
if [[ $what == criteo-extra || $what == all ]]; then  # i-Razor on the paper's Table 7 backbones; SSR-D at its
  # paper defaults (b = 16, d_v = 256: 20M backbone parameters)
  MAXBS=256 run criteo irazor:backbone=deepfm irazor:backbone=ipnn ssr-d
  MAXBS=256 SEEDS=${XDEEPFM_SEEDS:-$SEEDS} run criteo irazor:backbone=xdeepfm   # ~6 min per seed on one core (CIN, 39 fields, d = 30)
fi
if [[ $what == ssr-scaling || $what == all ]]; then  # SSR-S over the number of views b (b=16 is the default)
  MAXBS=256 run criteo ssr-s:b=1 ssr-s:b=2 ssr-s:b=4 ssr-s:b=8 ssr-s
  MAXBS=256 run avazu ssr-s:b=1 ssr-s:b=2 ssr-s:b=4 ssr-s:b=8 ssr-s   # Fig. 3's public dataset
fi
fg() {  # fg DATASET SEEDS: i-Razor vs DNN and argmax on the FG version (every pairwise cross field added)
  for m in dnn irazor irazor-argmax; do
    for attempt in 1 2 3; do
      "$LEANREC" run -d "$1" -m "$m" --data cross_fields=true --seeds "$2" --max-epochs "$EPOCHS" ${MAXBS:+--max-batch-size $MAXBS} \
        --results-dir results --no-progress --threads "${THREADS:-1}" && break
    done
  done
}
if [[ $what == fg || $what == all ]]; then
  fg frappe "$SEEDS"
fi
if [[ $what == fg-criteo || $what == all ]]; then  # 39 + 741 cross fields on 8K training rows
  MAXBS=256 fg criteo "${FG_CRITEO_SEEDS:-$SEEDS}"
fi
if [[ $what == fg-rest || $what == all ]]; then  # Avazu 23 + 253, MovieLens 25 + 300 fields (i-Razor ~10 min a run there)
  MAXBS=256 fg avazu "$SEEDS"
  fg movielens-100k "$SEEDS"
fi
# Issue 21: the runs CLAIMS.md's checks need beyond the paper tables (its last section lists what is still
# missing per dataset, with the command); the sixth session ran the Criteo head's list.
if [[ $what == claims-criteo ]]; then
  MAXBS=256 run criteo reaction-dtf reaction-dtf:alpha=0,beta=0,gamma=0 dnn:embedding_dim=30 'dnn:hidden=[1024,1024,1024]' \
    'irazor:candidates=[0,1,3,6,10,15,21,28]' 'irazor:candidates=[0,4,8,12,16,20,24,28]' \
    lightfmp-wide-deep:weight_transfer=false lightfmp-xdeepfm:pretrain_rows=4000 lightfmp-xdeepfm:pretrain_rows=500 \
    lightfmp-xdeepfm:prune_ratio=0.0 lightfmp-xdeepfm:prune_ratio=0.25 lightfmp-xdeepfm:prune_ratio=0.75 \
    reaction-afe:keep_ratio=0.5 'reaction-dtf:towers=[[80,80,80],[240],[120,120,120],[60,60,60]]' \
    'reaction-dtf:towers=[[80,80,80],[240],[120,120,120]]' ssr-d:b=1 ssr-d:filter=none ssr-d:filter=topk \
    ssr-d:ics_alpha=0.01 ssr-d:ics_alpha=0.5 ssr-d:ics_gamma=false ssr-d:ics_iters=1 ssr-d:ics_iters=2 \
    ssr-s:filter=dropout
  run frappe reaction-dtf reaction-dtf:alpha=0,beta=0,gamma=0
fi
# The same checks on the Avazu head (seconds a run) and its FG version. SSR-D at its paper defaults (b = 16,
# d_v = 256: ~20M parameters, minutes a seed on one core) and its ablations are left out here (CLAIMS.md lists
# them under "Runs that no record covers yet").
if [[ $what == claims-avazu ]]; then
  MAXBS=256 run avazu $BASELINES $REACTION $LIGHTFMP irazor:backbone=deepfm irazor:backbone=ipnn \
    dnn:embedding_dim=30 'dnn:hidden=[1024,1024,1024]' adafs autofield lasso mvfs optfs pca \
    'irazor:candidates=[0,1,3,6,10,15,21,28]' 'irazor:candidates=[0,4,8,12,16,20,24,28]' \
    lightfmp-wide-deep:weight_transfer=false reaction-afe:keep_ratio=0.5 \
    'reaction-dtf:towers=[[80,80,80],[240],[120,120,120],[60,60,60]]' 'reaction-dtf:towers=[[80,80,80],[240],[120,120,120]]' \
    ssr-d:b=1 ssr-d:b=8,d_v=64 ssr-s:filter=dropout irazor:backbone=xdeepfm
  DATA=cross_fields=true MAXBS=256 run avazu irazor:zero_dim=false irazor-argmax:zero_dim=false irazor:cpt=0.1 \
    irazor:cpt=0.5 irazor:reg_lambda=0.01
fi
# SSR's ablations (Tables 4-5) on a reduced SSR (b = 8, d_v = 64: seconds a run instead of minutes; the claims
# registry's SSR_D_SMALL checks), on both heads the paper's public ablations cover.
SSR_SMALL="ssr-d:b=8,d_v=64 ssr-d:b=8,d_v=64,filter=none ssr-d:b=1,d_v=64 ssr-s:b=8,d_v=64 ssr-d:b=8,d_v=64,filter=topk
  ssr-s:b=8,d_v=64,filter=dropout ssr-d:b=8,d_v=64,ics_iters=1 ssr-d:b=8,d_v=64,ics_iters=2
  ssr-d:b=8,d_v=64,ics_alpha=0.5 ssr-d:b=8,d_v=64,ics_alpha=0.01 ssr-d:b=8,d_v=64,ics_gamma=false"
if [[ $what == claims-ssr ]]; then
  MAXBS=256 run criteo $SSR_SMALL
  MAXBS=256 run avazu $SSR_SMALL
fi
# SSR's scaling claim (S15): on the ground-truth study's 1M-row synthetic log (one epoch per run, as there), SSR-S
# with b = 2, 4, 8, 16 views (0.27M-2.1M backbone parameters) against DNNs with SSR's embedding dim 16 and three
# hidden layers whose width matches each size (264, 408, 616, 912: claims_registry.dense_matched).
# ssr-scale-5m: the same on a 5M-row log (4M training rows; not run yet: the 1M-row seeds took 9-13 min of one core
# each, so roughly an hour a seed at 5x the rows), where the dense MLPs have more data to saturate on.
# `oracle` (seconds) serves the generator's own click probability: the log's AUC ceiling, drawn on S15's and
# S18's curves and listed above the leaderboard's ranked rows.
# ssr-scale-teacher: the same grid on a 1M-row log whose signal is mostly a fixed random network over the 5
# informative fields (synthetic.teacher_width = 128; additive effects 0.3): a log that leaves the models room
# below its ceiling, where the additive one leaves ~0.003 at 5M rows.
if [[ $what == ssr-scale || $what == ssr-scale-5m || $what == ssr-scale-teacher ]]; then
  scale_rows=1000000; [[ $what == ssr-scale-5m ]] && scale_rows=5000000
  teacher=(); [[ $what == ssr-scale-teacher ]] && teacher=(--data synthetic.teacher_width=128 --data synthetic.effect=0.3)
  for attempt in 1 2 3; do
    "$LEANREC" run -d synthetic --data synthetic.n_rows=$scale_rows --data synthetic.n_fields=30 "${teacher[@]}" \
      -m ssr-s:b=2 -m ssr-s:b=4 -m ssr-s:b=8 -m ssr-s -m 'dnn:embedding_dim=16,hidden=[264,264,264]' \
      -m 'dnn:embedding_dim=16,hidden=[408,408,408]' -m 'dnn:embedding_dim=16,hidden=[616,616,616]' \
      -m 'dnn:embedding_dim=16,hidden=[912,912,912]' -m oracle --seeds "${SCALE_SEEDS:-3}" --max-epochs 1 \
      --results-dir results \
      --no-progress --threads "${THREADS:-1}" && break
    echo "attempt $attempt failed; resuming" >&2
  done
fi
# ssr-scale-teacher-5m: the teacher log at 5M rows (4M training rows), S15's end points only (SSR-S b = 2 and 16, the
# 264- and 912-wide DNNs; ~60 min a seed on one core (seed 0, other core busy)): does more data let the larger models gain where 1M rows did not?
if [[ $what == ssr-scale-teacher-5m ]]; then
  for attempt in 1 2 3; do
    "$LEANREC" run -d synthetic --data synthetic.n_rows=5000000 --data synthetic.n_fields=30 \
      --data synthetic.teacher_width=128 --data synthetic.effect=0.3 -m ssr-s:b=2 -m ssr-s \
      -m 'dnn:embedding_dim=16,hidden=[264,264,264]' -m 'dnn:embedding_dim=16,hidden=[912,912,912]' -m oracle \
      --seeds "${SCALE_SEEDS:-3}" --max-epochs 1 --results-dir results --no-progress --threads "${THREADS:-1}" && break
    echo "attempt $attempt failed; resuming" >&2
  done
fi
# S18: RankMixer and Wukong scaled on the same 1M-row log to SSR-S's backbone sizes (claims.RANKMIXER_WIDTHS,
# WUKONG_WIDTHS): RankMixer's token width 48, 64, 96, 128 (8 tokens, 2 layers: 0.32M-2.17M parameters), Wukong's
# FMB and top-MLP width 128, 192, 400, 640 (0.30M-2.13M).
# ssr-scale-rivals-teacher: the same on the teacher log of ssr-scale-teacher.
if [[ $what == ssr-scale-rivals || $what == ssr-scale-rivals-teacher ]]; then
  teacher=(); [[ $what == ssr-scale-rivals-teacher ]] && teacher=(--data synthetic.teacher_width=128 --data synthetic.effect=0.3)
  for attempt in 1 2 3; do
    "$LEANREC" run -d synthetic --data synthetic.n_rows=1000000 --data synthetic.n_fields=30 "${teacher[@]}" \
      -m rankmixer:embedding_dim=16,token_dim=48 -m rankmixer:embedding_dim=16,token_dim=64 \
      -m rankmixer:embedding_dim=16,token_dim=96 -m rankmixer:embedding_dim=16,token_dim=128 \
      -m 'wukong:embedding_dim=16,fmb_hidden=[128],hidden=[128,128,128]' \
      -m 'wukong:embedding_dim=16,fmb_hidden=[192],hidden=[192,192,192]' \
      -m 'wukong:embedding_dim=16,fmb_hidden=[400],hidden=[400,400,400]' \
      -m 'wukong:embedding_dim=16,fmb_hidden=[640],hidden=[640,640,640]' --seeds "${SCALE_SEEDS:-3}" --max-epochs 1 \
      --results-dir results --no-progress --threads "${THREADS:-1}" && break
    echo "attempt $attempt failed; resuming" >&2
  done
fi
if [[ $what == claims-movielens ]]; then  # ~2 min a run on one core (80K training rows)
  run movielens-100k adafs autofield dnn:embedding_dim=30 lasso mvfs optfs pca lightfmp-wide-deep:weight_transfer=false \
    lightfmp-xdeepfm:prune_ratio=0.0 lightfmp-xdeepfm:prune_ratio=0.25 lightfmp-xdeepfm:prune_ratio=0.75 \
    reaction-afe:keep_ratio=0.5
fi
# S19: the views' projections after 783 steps on the 1M-row log (the heads' runs move them less than their norm)
if [[ $what == ssr-views ]]; then
  "$LEANREC" run -d synthetic --data synthetic.n_rows=1000000 --data synthetic.n_fields=30 -m ssr-d:b=8,d_v=64 \
    --seeds "${SCALE_SEEDS:-3}" --max-epochs 1 --results-dir results --no-progress --threads "${THREADS:-1}"
fi
# SSR-D at its paper defaults (b = 16, d_v = 256: ~20M backbone parameters, ~70 s a seed on the Avazu head,
# minutes on Frappe and MovieLens) and its Table 4-5 ablations on the Avazu head (CLAIMS.md S2, S5-S13; the
# Criteo head's are in claims-criteo).
if [[ $what == claims-ssr-d ]]; then
  MAXBS=256 run avazu ssr-d ssr-d:filter=none ssr-d:filter=topk ssr-d:ics_alpha=0.01 ssr-d:ics_alpha=0.5 \
    ssr-d:ics_gamma=false ssr-d:ics_iters=1 ssr-d:ics_iters=2
  run frappe ssr-d
  run movielens-100k ssr-d
fi
# i-Razor's cpt / lambda sweep on MovieLens-FG (I8; ~6 min a run on one core) and its variants without the
# 0-dim candidate on Criteo-FG (I6; ~2.5 min a run).
if [[ $what == claims-fg ]]; then
  DATA=cross_fields=true MAXBS=256 run criteo irazor-argmax:zero_dim=false irazor:zero_dim=false
  DATA=cross_fields=true run movielens-100k irazor:cpt=0.1 irazor:cpt=0.5 irazor:reg_lambda=0.01
fi
# REACTION's Table 4 on one common backbone (R9; seconds a run): LASSO, PCA and AutoField keep AFE's share of
# fields (0.75) and retrain REACTION's baseline tower (embedding 16, MLP [80,80,80]), as reaction-afe does.
AFE_RIVALS="lasso pca autofield"
if [[ $what == claims-afe ]]; then
  rivals=(); for s in $AFE_RIVALS; do rivals+=("$s:backbone=reaction-baseline,embedding_dim=16,keep_ratio=0.75"); done
  MAXBS=256 run criteo "${rivals[@]}"
  MAXBS=256 run avazu "${rivals[@]}"
  run movielens-100k "${rivals[@]}"
  run frappe "${rivals[@]}"
fi
# REACTION's Fig. 1(c) and SSR's Fig. 1 (R14, S16; seconds a run, ~1 min on Frappe): the zoo DNN trained as its own
# row, then one-shot magnitude pruning of each dense layer (magprune keeps the share `keep`); the record holds the
# pruned and unpruned test AUC and the trained weights' sparsity statistics.
if [[ $what == claims-dense ]]; then
  MAXBS=256 run criteo magprune:keep=0.05 magprune:keep=0.1 magprune:keep=0.2 magprune:keep=0.5
  MAXBS=256 run avazu magprune:keep=0.05 magprune:keep=0.1 magprune:keep=0.2 magprune:keep=0.5
  run movielens-100k magprune:keep=0.1 magprune:keep=0.2
  run frappe magprune:keep=0.1 magprune:keep=0.2
fi
# i-Razor's Table 7 transfer (I11): the configuration searched on the DNN, retrained on DeepFM, xDeepFM, IPNN
# (irazor-transfer), beside the model-consistent irazor:backbone=... rows of claims-avazu / criteo-extra.
if [[ $what == claims-transfer ]]; then
  MAXBS=256 run avazu irazor-transfer:backbone=deepfm irazor-transfer:backbone=ipnn irazor-transfer:backbone=xdeepfm
  MAXBS=256 run criteo irazor-transfer:backbone=deepfm irazor-transfer:backbone=ipnn irazor-transfer:backbone=xdeepfm
fi
# i-Razor's field selection alone (I12, Tables 3-4 "i-Razor w/ FDE"): the fields its search keeps, each retrained
# at the dnn row's dim 10, on Avazu, Criteo and their FG versions (~1-2.5 min a run on the FG data).
if [[ $what == claims-irazor-fde ]]; then
  MAXBS=256 run avazu irazor-fde
  MAXBS=256 run criteo irazor-fde
  DATA=cross_fields=true MAXBS=256 run avazu irazor-fde
  DATA=cross_fields=true MAXBS=256 run criteo irazor-fde
fi
# REACTION's R11: DTF's cohorts of 3 and 4 towers trained without the fusion losses (alpha = beta = gamma = 0), the
# controls whose gap to DTF is compared across cohort sizes (the 2-tower control runs in claims-criteo / frappe).
CTL3='reaction-dtf:alpha=0,beta=0,gamma=0,towers=[[80,80,80],[240],[120,120,120]]'
CTL4='reaction-dtf:alpha=0,beta=0,gamma=0,towers=[[80,80,80],[240],[120,120,120],[60,60,60]]'
if [[ $what == claims-dtf-control ]]; then
  MAXBS=256 run criteo "$CTL3" "$CTL4"
  MAXBS=256 run avazu reaction-dtf:alpha=0,beta=0,gamma=0 "$CTL3" "$CTL4"
fi
# Issue 21: feature selection with ground truth. Every selector (each keep ratio), REACTION's AFE, Light-FMP's
# gates and i-Razor's dims on a 1M-row synthetic log whose planted roles say which fields matter (30 fields:
# 5 informative, 2 interaction (informative only jointly), 3 redundant near-copies, 20 noise), DNN on all fields
# as the reference; results/selection_truth.py then scores each method's kept fields against the roles
# (results/tables/truth/). Budget: one epoch per stage (--max-epochs 1: 800K training rows, 782 steps at batch
# 1024, 196 at 4096), above protocol 2's 100-step floor except Light-FMP's 2K-row pretraining (the floor makes it
# 100 steps, as everywhere). Estimated from the per-step times of a 20K-row run of 10 of these methods (one
# core shared ~1:1 with another job, load ~3): ~40 min of wall time per seed at that load (~20 min of CPU), so
# ~2 h for 3 seeds, ~1 h on an idle core; the AFE search (assumed linear in rows) is the least certain part.
TRUTH_METHODS=${TRUTH_METHODS:-"dnn $SELECTORS reaction-afe reaction-afe:keep_ratio=0.5 lightfmp
  lightfmp:prune_ratio=0.25 lightfmp:prune_ratio=0.75 irazor"}
TRUTH_ROWS=${TRUTH_ROWS:-1000000}   # smaller for a quick check of the section (e.g. TRUTH_ROWS=5000 TRUTH_METHODS=mi)
if [[ $what == truth ]]; then
  targs=(); for m in $TRUTH_METHODS; do targs+=(-m "$m"); done
  for attempt in 1 2 3; do
    "$LEANREC" run -d synthetic --data synthetic.n_rows="$TRUTH_ROWS" --data synthetic.n_fields=30 "${targs[@]}" \
      --seeds "${TRUTH_SEEDS:-3}" --max-epochs "${TRUTH_EPOCHS:-1}" --results-dir results --no-progress \
      --threads "${THREADS:-1}" && break
    echo "attempt $attempt failed; resuming" >&2
  done
  .venv/bin/python results/selection_truth.py results --dataset "synthetic[n_fields=30,n_rows=$TRUTH_ROWS]" \
    --out results/tables/truth
fi
# Issue 22: every method tuned with the same trial budget (Optuna TPE on the validation split, trial 0 = the
# defaults, worst quarter pruned; studies in results/tuning/studies.db, one summary per method beside it), then
# its best config and its defaults over the same seeds, under the same budget as the committed tables (so a
# tuned config equal to the defaults is the committed default run). Rerunning continues the studies and skips
# finished runs; JOBS processes share each study (they draw in parallel: not reproducible trial for trial).
# The committed table (results/tables/tuned) ran TRIALS=12 (two processes, each method's study in one of them,
# so every study is reproducible trial for trial; ~25 min of both cores); TRIALS=32 is the default here.
TUNED="dnn deepfm dcnv2 reaction lightfmp ssr-s irazor"   # the baselines and one method of each paper
tune() {  # tune DATASET METHODS...
  local dataset=$1; shift
  local args=()
  for m in "$@"; do args+=(-m "$m"); done
  for attempt in 1 2 3; do
    "$LEANREC" tune -d "$dataset" "${args[@]}" --trials "${TRIALS:-32}" --jobs "${JOBS:-1}" --seed 0 \
      --seeds "$SEEDS" --max-epochs "$EPOCHS" ${MAXBS:+--max-batch-size $MAXBS} \
      --results-dir results --no-progress --threads "${THREADS:-1}" && return 0
    echo "attempt $attempt failed; resuming" >&2
  done
}
if [[ $what == tuned ]]; then
  tune frappe $TUNED
  MAXBS=256 tune criteo $TUNED   # the 10K-row head, batch cap as in its committed table (batch_size not searched)
  "$LEANREC" leaderboard --results-dir results --tuned --out results/tables/tuned \
    --title "Tuned (${TRIALS:-32} trials per method) against default configs (issue 22)" > /dev/null
fi
if [[ $what == tables || $what == all ]]; then  # per-paper views of the one common leaderboard
  LB() { local out=$1 title=$2; shift 2; local only=(); for p in "$@"; do only+=(--only "$p"); done
         "$LEANREC" leaderboard --results-dir results --out "results/tables/$out" --title "$title" "${only[@]}" > /dev/null; }
  "$LEANREC" leaderboard --results-dir results > /dev/null
  LB baselines "Baseline zoo (issue 6)" $BASELINES
  LB reaction "REACTION variants, paper Table 3 (issue 8)" 'reaction*' dnn
  LB lightfmp "Light-FMP on each backbone, with and without (issue 9)" dnn deepfm wide-deep ipnn xdeepfm 'lightfmp*'
  LB ssr "SSR vs dense backbones (issue 10)" dnn dcnv2 rankmixer wukong 'ssr-*'
  LB irazor "i-Razor vs fixed dims and argmax, plain and FG data (issue 11)" dnn 'irazor*'
  SEL=(dnn mi chi2 variance lasso pca autofield adafs optfs lpfs mvfs 'mi[*' 'lasso[*' 'lpfs[*' adafs-e2e mvfs-e2e)
  LB selection "Feature selectors, DNN retrained on the top fields (issue 7)" "${SEL[@]}"
  only=(); for p in "${SEL[@]}"; do only+=(--only "$p"); done
  "$LEANREC" selection-table --results-dir results --out results/tables/selection "${only[@]}" > /dev/null
  .venv/bin/python benchmarks/ssr_scaling.py results --knob b --out results/tables/ssr/ssr_scaling_b.png > /dev/null
  # each paper's headline claims with a verdict from these records (results/CLAIMS.md + results/claims/*.png)
  "$LEANREC" claims --results-dir results --out results/CLAIMS.md > /dev/null
fi
