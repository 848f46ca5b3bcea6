"""The claims registry: every headline claim of the four papers (abstracts, main comparison tables, ablation
tables, the figures their text relies on), each with its leanrec counterpart as checks over the run records,
or the reason it has none. Read by :mod:`leanrec.claims` (`leanrec claims`), which measures and renders them.

Conventions: method specs are written as on `leanrec run -m` (`lightfmp-xdeepfm:prune_ratio=0.25`); the claims
module turns them into the canonical variant names records carry. `paper` numbers are the paper's Δ (A − B)
on the dataset leanrec's sample stands for (REACTION's MovieLens has 2M rows and 3 fields -- by its statistics
the BARS MovielensLatest set -- and Light-FMP's is MovieLens-20M; leanrec runs MovieLens-100K; the papers'
Criteo/Avazu are the full logs, leanrec runs their first 10K rows). Frappe is
in no paper; its checks test whether a claim carries over to a third public dataset."""
from __future__ import annotations

from typing import Any

from leanrec.claims import (AFE_RIVALS, DENSE_KEEP, DTF_CONTROL, DTF_CONTROL_3, DTF_CONTROL_4, RANKMIXER_WIDTHS,
                            SYNTHETIC_1M, SYNTHETIC_5M, SYNTHETIC_TEACHER,
                            SYNTHETIC_TEACHER_5M, WUKONG_WIDTHS, Check, Claim, Curve, Heatmap,
                            rankmixer_matched, wukong_matched)

PAPER_TITLES = {
    "REACTION": "Wu, Du, Jia, Dong. *REACTION: Parameter-Efficient Learning for Recommendation.* AAAI 2026 "
                "(`/work/shared/papers/reaction-aaai2026.txt`). Datasets: Criteo, Avazu, MovieLens, UGC (not available "
                "to leanrec).",
    "Light-FMP": "Bui, Ning, Wang. *Light-FMP: Lightweight Feature and Model Pruning for Enhanced Deep Recommender "
                 "Systems.* Datasets: Criteo, Avazu, MovieLens-20M; 3 runs each.",
    "SSR": "Yu, Qiao, Shen, Wang, Zeng. *Beyond Dense Connectivity: Explicit Sparsity for Scalable Recommendation.* "
           "SIGIR 2026. Datasets: AliExpress industrial (1B rows), Avazu, Criteo, Alibaba.",
    "i-Razor": "Yao, Liu, He, Sheng, Wang, Xiao, Cao. *i-Razor: A Differentiable Neural Input Razor for Feature "
               "Selection and Dimension Search in DNN-Based Recommender Systems.* arXiv:2204.00281v2. Datasets: "
               "Criteo, Avazu and their FG versions (all pairwise cross fields).",
}

CRITEO, AVAZU, ML, FRAPPE = "criteo", "avazu", "movielens-100k", "frappe"
PUBLIC = (CRITEO, AVAZU, ML, FRAPPE)
FG = {d: f"{d}[cross_fields=true]" for d in PUBLIC}
ALL_FG = tuple(FG.values())
AUC_MARGIN = 0.001   # "a 0.001-level AUC difference is significant" (REACTION, Light-FMP, i-Razor)

# ---- REACTION -----------------------------------------------------------------------------------------------
R = "REACTION"
DTF_3 = "reaction-dtf:towers=[[80,80,80],[240],[120,120,120]]"              # a cohort of 3 towers
DTF_4 = "reaction-dtf:towers=[[80,80,80],[240],[120,120,120],[60,60,60]]"   # and of 4
REACTION = [
    Claim("R1", R, "Abstract; Table 1", "REACTION outperforms existing methods in accuracy on four benchmarks (highest "
          "AUC). Counterpart: REACTION against FinalMLP, the strongest of Table 1's baselines that leanrec has "
          "(LLM-ESR, AutoDis, APG, KD-DAGFM, BKD, ECKD are not implemented).",
          "AUC REACTION / FinalMLP: Criteo 0.8165 / 0.8139, Avazu 0.7882 / 0.7855, MovieLens 0.9590 / 0.9561, "
          "UGC 0.8055 / 0.8034 (10 seeds, p < 1e-4 vs the best baseline).",
          (Check("reaction", ">", "finalmlp", PUBLIC,
                 paper={CRITEO: 0.8165 - 0.8139, AVAZU: 0.7882 - 0.7855, ML: 0.9590 - 0.9561}),)),
    Claim("R2", R, "Table 1", "REACTION has the lowest logloss on every dataset.",
          "Logloss REACTION / FinalMLP: Criteo 0.4358 / 0.4380, Avazu 0.3761 / 0.3784, MovieLens 0.1956 / 0.1976.",
          (Check("reaction", "<", "finalmlp", PUBLIC, metric="logloss",
                 paper={CRITEO: 0.4358 - 0.4380, AVAZU: 0.3761 - 0.3784, ML: 0.1956 - 0.1976}),)),
    Claim("R3", R, "Abstract; Table 1", "REACTION drastically reduces parameters and inference cost: fewest "
          "parameters, FLOPs and lowest latency of all methods.",
          "UGC: REACTION 4.83M params, 7.58M FLOPs, 0.148 ms vs FinalMLP 62.41M, 87.28M, 0.556 ms.",
          (Check("reaction", "<", "finalmlp", PUBLIC, metric="params"),
           Check("reaction", "<", "finalmlp", PUBLIC, metric="flops"),
           Check("reaction", "<", "finalmlp", PUBLIC, metric="latency_b1",
                 note="wall clock on shared CPU cores"))),
    Claim("R4", R, "Table 3", "Dynamic Tower Fusion improves the single-tower baseline on every dataset.",
          "AUC Baseline+DTF / Baseline: Criteo 0.8154 / 0.8118, Avazu 0.7872 / 0.7833, MovieLens 0.9579 / 0.9543, "
          "UGC 0.8040 / 0.8022.",
          (Check("reaction-dtf", ">", "reaction-baseline", PUBLIC,
                 paper={CRITEO: 0.8154 - 0.8118, AVAZU: 0.7872 - 0.7833, ML: 0.9579 - 0.9543}),
           Check("reaction-dtf", ">", DTF_CONTROL, (CRITEO, FRAPPE),
                 note="credit check: the same two towers trained without the fusion losses (L_srf, L_rff, "
                      "InfoNCE off), the better one on validation served; a DTF gain over the baseline that this "
                      "control also shows comes from training two towers and picking one, not from fusion"))),
    Claim("R5", R, "Table 3", "DTF outperforms entropy regularisation (ER) and knowledge distillation (KD) on "
          "every dataset.",
          "AUC DTF / ER / KD: Criteo 0.8154 / 0.8122 / 0.8124, Avazu 0.7872 / 0.7835 / 0.7836, MovieLens "
          "0.9579 / 0.9549 / 0.9553.",
          (Check("reaction-dtf", ">", "reaction-er", PUBLIC,
                 paper={CRITEO: 0.8154 - 0.8122, AVAZU: 0.7872 - 0.7835, ML: 0.9579 - 0.9549}),
           Check("reaction-dtf", ">", "reaction-kd", PUBLIC,
                 paper={CRITEO: 0.8154 - 0.8124, AVAZU: 0.7872 - 0.7836, ML: 0.9579 - 0.9553}))),
    Claim("R6", R, "Table 3", "ER and KD each improve the baseline slightly.",
          "AUC ER / KD / Baseline: Criteo 0.8122 / 0.8124 / 0.8118, Avazu 0.7835 / 0.7836 / 0.7833, MovieLens "
          "0.9549 / 0.9553 / 0.9543.",
          (Check("reaction-er", ">", "reaction-baseline", PUBLIC,
                 paper={CRITEO: 0.8122 - 0.8118, AVAZU: 0.7835 - 0.7833, ML: 0.9549 - 0.9543}),
           Check("reaction-kd", ">", "reaction-baseline", PUBLIC,
                 paper={CRITEO: 0.8124 - 0.8118, AVAZU: 0.7836 - 0.7833, ML: 0.9553 - 0.9543}))),
    Claim("R7", R, "Table 4", "Adaptive Feature Extraction improves the baseline trained on all fields.",
          "UGC: Baseline+AFE 0.8030 AUC / 0.4062 logloss vs all fields 0.8008 / 0.4196 (UGC only).",
          (Check("reaction-afe", ">", "reaction-baseline", PUBLIC),
           Check("reaction-afe:estimator=shuffle,lookahead=true", ">", "reaction-baseline", (CRITEO,),
                 note="leanrec's bias-corrected AFE option"))),
    Claim("R8", R, "Table 1 vs Table 3", "AFE adds to DTF: the full REACTION (AFE + DTF) beats Baseline + DTF.",
          "AUC REACTION / Baseline+DTF: Criteo 0.8165 / 0.8154, Avazu 0.7882 / 0.7872, MovieLens 0.9590 / 0.9579 "
          "(derived from two tables; on UGC Table 6's Baseline+DTF at T/S = 1, 0.8057, is above REACTION's 0.8055).",
          (Check("reaction", ">", "reaction-dtf", PUBLIC,
                 paper={CRITEO: 0.8165 - 0.8154, AVAZU: 0.7882 - 0.7872, ML: 0.9590 - 0.9579}),)),
    Claim("R9", R, "Table 4", "AFE selects better fields than PCA, LASSO, IDARTS, AutoField and TayFCS on the same "
          "baseline. Counterpart: AFE against LASSO, PCA and AutoField, each keeping as many fields as AFE "
          "(keep ratio 0.75, leanrec's AFE default; the paper's AFE dropped 6 of 92 UGC fields) and retraining "
          "REACTION's baseline tower (embedding 16, MLP [80,80,80], its training "
          "settings) on them (TayFCS and IDARTS are not implemented; UGC is not public).",
          "UGC AUC: AFE 0.8030, TayFCS 0.8023, AutoField 0.8012, LASSO 0.7993, PCA 0.7988, IDARTS 0.7962; logloss "
          "0.4062, 0.4125, 0.4184, 0.4218, 0.4211, 0.4234.",
          tuple(Check("reaction-afe", ">", spec, PUBLIC) for spec in AFE_RIVALS)
          + tuple(Check("reaction-afe", "<", spec, PUBLIC, metric="logloss",
                        note="Sec. 5.2: 'higher AUC, and lower Logloss in all the four datasets'")
                  for spec in AFE_RIVALS)),
    Claim("R10", R, "Tables 5-6", "Baseline + DTF improves as the tower cohort grows (2 → 4 towers), with "
          "diverse towers.",
          "Criteo Baseline+DTF AUC by row: 0.8154, 0.8167, 0.8178, 0.8187; UGC 0.8057, 0.8070, 0.8081, 0.8090.",
          (Check(DTF_3, ">", "reaction-dtf", (CRITEO, AVAZU),
                 paper={CRITEO: 0.8167 - 0.8154}),
           Check(DTF_4, ">",
                 DTF_3, (CRITEO, AVAZU),
                 paper={CRITEO: 0.8178 - 0.8167}))),
    Claim("R11", R, "Tables 5-6", "The gain of DTF over independently trained towers grows with the cohort size. "
          "Counterpart: per seed, DTF's test AUC minus that of the same cohort trained without the fusion losses "
          "(each tower on its own loss over the shared embedding, the best on validation served: our reading of "
          "'independently trained models'; the tables' 'Baseline' at T/S > 1 is not defined), compared between "
          "cohorts of 2, 3 and 4 towers (T/S = towers − 1 = 1, 2, 3).",
          "Baseline+DTF − Baseline by T/S 1–4: Criteo 0.0039, 0.0046, 0.0043, 0.0049; UGC 0.0033, 0.0037, 0.0043, "
          "0.0049 (the tables' 'Rel. Imp' 0.0022… is against the best distillation baseline, not this gap).",
          (Check(DTF_3, ">", "reaction-dtf", (CRITEO, AVAZU), metric="auc_gain", ref=DTF_CONTROL_3,
                 b_ref=DTF_CONTROL, paper={CRITEO: 0.0046 - 0.0039}),
           Check(DTF_4, ">", DTF_3, (CRITEO, AVAZU), metric="auc_gain", ref=DTF_CONTROL_4, b_ref=DTF_CONTROL_3,
                 paper={CRITEO: 0.0043 - 0.0046},
                 note="on Criteo the paper's own gap shrinks at this step (it grows again after; UGC +0.0006)"))),
    Claim("R12", R, "Abstract; Introduction; Sec. 4.2", "After DTF training either tower alone serves without a "
          "significant "
          "drop against the dual-tower model.",
          "Stated, no table.",
          (Check("reaction-dtf", ">=", "reaction-dtf", PUBLIC, metric="worst_tower_auc", b_metric="ensemble_auc",
                 margin=AUC_MARGIN, note="per seed, the worse of the two towers served alone against the "
                 "towers' mean logit, both scored on test by the harness (metrics.companions)"),)),
    Claim("R13", R, "Introduction; Fig. 1(a)-(b)", "About 46% of features are negligible; removing them preserves "
          "or improves accuracy.",
          "Fig. 1 (Criteo/Avazu): curves only.",
          (Check("reaction-afe:keep_ratio=0.5", ">=", "reaction-baseline", (CRITEO, AVAZU, ML, FRAPPE),
                 margin=AUC_MARGIN, note="AFE keeping half of the fields"),)),
    Claim("R14", R, "Introduction; Fig. 1(c)", "Keeping 10% of the dense-layer parameters preserves 98.5% of the "
          "performance on Criteo (20%: 99.7% on Avazu).",
          "Fig. 1(c): curves only.",
          tuple(Check(f"magprune:keep={keep}", ">=", share, PUBLIC, metric="auc_retained", margin=margin,
                      note=f"the zoo DNN trained as its own row, then all but the {keep:.0%} largest-magnitude "
                           "weights of each dense layer zeroed (no retraining; batch-norm statistics "
                           "re-estimated); its test AUC over the unpruned model's, per seed; the paper's figure is for "
                           f"{'Criteo' if keep == 0.1 else 'Avazu'}, the other datasets test whether it carries over")
                for keep, share, margin in ((0.1, 0.985, 0.002), (0.2, 0.997, 0.001)))),
]

# ---- Light-FMP ----------------------------------------------------------------------------------------------
L = "Light-FMP"
BACKBONES = {"dnn": "lightfmp", "deepfm": "lightfmp-deepfm", "wide-deep": "lightfmp-wide-deep",
             "ipnn": "lightfmp-ipnn", "xdeepfm": "lightfmp-xdeepfm"}
T3_AUC = {"xdeepfm": (0.8022, 0.7913), "deepfm": (0.7941, 0.7891), "wide-deep": (0.7888, 0.7746),
          "ipnn": (0.7952, 0.7800), "dnn": (0.7847, 0.7737)}
T3_LOGLOSS = {"xdeepfm": (0.4486, 0.4616), "deepfm": (0.4557, 0.4630), "wide-deep": (0.4620, 0.4833),
              "ipnn": (0.4551, 0.4801), "dnn": (0.4640, 0.4838)}


def _per_backbone(op: str, metric: str = "auc", paper: dict | None = None, datasets=PUBLIC, note: str = "") -> tuple:
    return tuple(Check(lf, op, bb, datasets, metric=metric, note=note,
                       paper=({CRITEO: paper[bb][0] - paper[bb][1]} if paper else {}) | (
                           {AVAZU: 0.7845 - 0.7782, ML: 0.8071 - 0.8045} if bb == "xdeepfm" and metric == "auc"
                           else {}))
                 for bb, lf in BACKBONES.items())


LIGHTFMP = [
    Claim("L1", L, "Abstract; Table 3; Table 2", "Light-FMP improves accuracy over the unpruned backbone, for "
          "every backbone (model-agnostic).",
          "Criteo AUC +Light-FMP / backbone: xDeepFM 0.8022 / 0.7913, DeepFM 0.7941 / 0.7891, Wide&Deep 0.7888 / "
          "0.7746, PNN 0.7952 / 0.7800, DNN 0.7847 / 0.7737; xDeepFM on Avazu 0.7845 / 0.7782, MovieLens "
          "0.8071 / 0.8045 (3 runs).",
          _per_backbone(">", paper=T3_AUC)),
    Claim("L2", L, "Table 3", "Light-FMP lowers logloss on every backbone.",
          "Criteo logloss +Light-FMP / backbone: xDeepFM 0.4486 / 0.4616, DeepFM 0.4557 / 0.4630, Wide&Deep "
          "0.4620 / 0.4833, PNN 0.4551 / 0.4801, DNN 0.4640 / 0.4838.",
          _per_backbone("<", "logloss", T3_LOGLOSS)),
    Claim("L3", L, "Abstract; Tables 2-3", "Light-FMP cuts total training time (pretraining + pruning + continued "
          "training) against training the backbone.",
          "TT ratio (xDeepFM) 0.61 Criteo, 0.71 MovieLens, 0.60 Avazu; Table 3: 26% (PNN) to 53% (DeepFM) less.",
          _per_backbone("<", "time", note="wall clock on shared CPU cores")),
    Claim("L4", L, "Sec. 2.6-2.7", "The pruned serving model is compact: fewer parameters and faster inference "
          "than the backbone.",
          "Stated, no numbers.",
          _per_backbone("<", "params") + _per_backbone("<", "latency_b4096", note="wall clock on shared CPU cores")),
    Claim("L5", L, "Table 2", "Light-FMP is clearly more accurate than the single-stage deep selectors AdaFS and MvFS.",
          "xDeepFM AUC Light-FMP / AdaFS / MvFS: Criteo 0.8022 / 0.7934 / 0.7956, MovieLens 0.8071 / 0.7185 / "
          "0.7171, Avazu 0.7845 / 0.7758 / 0.7819. leanrec compares on the DNN backbone, which its selectors "
          "retrain (same embedding 10, MLP [400,400,400], keep ratio 0.5).",
          (Check("lightfmp", ">", "adafs", PUBLIC), Check("lightfmp", ">", "mvfs", PUBLIC))),
    Claim("L6", L, "Table 2; Sec. 4.1", "Against the two-stage deep selectors (OptFS, AutoField; OptEm is not "
          "implemented) Light-FMP is better or comparable in accuracy and consistently faster to train.",
          "xDeepFM AUC Light-FMP / OptFS / AutoField: Criteo 0.8022 / 0.8036 / 0.7996, MovieLens 0.8071 / 0.7176 / "
          "0.8051, Avazu 0.7845 / 0.7808 / 0.7824; TT 0.61 / 1.08 / 1.19 (Criteo); on Avazu AutoField trains "
          "faster (TT 0.43 vs 0.60), so 'consistently' does not hold in the paper's own Table 2.",
          (Check("lightfmp", ">=", "optfs", PUBLIC, margin=2 * AUC_MARGIN,
                 paper={CRITEO: 0.8022 - 0.8036, ML: 0.8071 - 0.7176, AVAZU: 0.7845 - 0.7808},
                 note="margin 0.002: the paper calls its own −0.0014 against OptFS on Criteo 'competitive'"),
           Check("lightfmp", ">=", "autofield", PUBLIC, margin=2 * AUC_MARGIN,
                 paper={CRITEO: 0.8022 - 0.7996, ML: 0.8071 - 0.8051, AVAZU: 0.7845 - 0.7824}),
           Check("lightfmp", "<", "optfs", PUBLIC, metric="time", note="wall clock on shared CPU cores"),
           Check("lightfmp", "<", "autofield", PUBLIC, metric="time", note="wall clock on shared CPU cores"))),
    Claim("L7", L, "Table 2", "Light-FMP beats the shallow selectors Lasso and PCA (XGBoost is not implemented).",
          "xDeepFM AUC Light-FMP / Lasso / PCA: Criteo 0.8022 / 0.7977 / 0.7965, MovieLens 0.8071 / 0.7163 / "
          "0.8062, Avazu 0.7845 / 0.7600 / 0.7587. DNN backbone here, as in L5.",
          (Check("lightfmp", ">", "lasso", PUBLIC), Check("lightfmp", ">", "pca", PUBLIC))),
    Claim("L8", L, "Contribution 2; Fig. 2b", "Keeping the pretrained (domain-adapted) weights improves accuracy, "
          "significantly for DNN and Wide&Deep.",
          "Fig. 2b (Criteo, five backbones): AUC gains for DNN and Wide&Deep, marginal for xDeepFM and DeepFM; PNN's "
          "logloss degrades by 0.04%.",
          (Check("lightfmp", ">", "lightfmp:weight_transfer=false", PUBLIC),
           Check("lightfmp-wide-deep", ">", "lightfmp-wide-deep:weight_transfer=false", PUBLIC))),
    Claim("L9", L, "Fig. 2c", "Moderate pruning (25%) gives the best AUC, better than none (0%) and than 50%; "
          "75% is worse still; training time falls as the pruning ratio grows.",
          "Fig. 2c (Criteo, xDeepFM): curves only.",
          (Check("lightfmp-xdeepfm:prune_ratio=0.25", ">", "lightfmp-xdeepfm:prune_ratio=0.0", (CRITEO, ML)),
           Check("lightfmp-xdeepfm:prune_ratio=0.25", ">", "lightfmp-xdeepfm", (CRITEO, ML)),
           Check("lightfmp-xdeepfm", ">", "lightfmp-xdeepfm:prune_ratio=0.75", (CRITEO, ML)),
           Check("lightfmp-xdeepfm:prune_ratio=0.75", "<", "lightfmp-xdeepfm:prune_ratio=0.25", (CRITEO, ML),
                 metric="time", note="wall clock on shared CPU cores"))),
    Claim("L10", L, "Fig. 2d", "A smaller pretraining subset gives higher accuracy (the paper fixes 2K rows), and "
          "Light-FMP stays above the unpruned backbone.",
          "Fig. 2d (Criteo, xDeepFM, pretraining 5e-4%, 1e-3%, 0.1% of 45.8M rows): AUC falls as the subset grows.",
          (Check("lightfmp-xdeepfm:pretrain_rows=500", ">", "lightfmp-xdeepfm", (CRITEO,),
                 note="500 vs 2000 rows (8K training rows)"),
           Check("lightfmp-xdeepfm", ">", "lightfmp-xdeepfm:pretrain_rows=4000", (CRITEO,)),
           Check("lightfmp", ">", "lightfmp:pretrain_rows=8000", (FRAPPE,), note="2000 vs 8000 rows"),
           Check("lightfmp-deepfm", ">", "lightfmp-deepfm:pretrain_rows=8000", (FRAPPE,)),
           *(Check(spec, ">", "xdeepfm", (CRITEO,), note="stays above the unpruned backbone")
             for spec in ("lightfmp-xdeepfm:pretrain_rows=500", "lightfmp-xdeepfm",
                          "lightfmp-xdeepfm:pretrain_rows=4000")))),
    Claim("L11", L, "Sec. 4.2; Fig. 2a", "Pretraining on the small subset is a small part of the training time "
          "(pretraining time far below continued-training time).",
          "Criteo (xDeepFM): pretraining 120 s, continued training 5134.5 s.",
          (Check("lightfmp-xdeepfm", "<", "lightfmp-xdeepfm", PUBLIC, metric="PT", b_metric="CT",
                 paper={CRITEO: 120 - 5134.5}),)),
    Claim("L12", L, "Sec. 4.5; Fig. 3", "The masking variable consistently ranks the same fields as important "
          "across pruning ratios.",
          "Fig. 3 (Criteo, xDeepFM): C3, C4, C7, C11, C16, C20, C25, C26 kept at every ratio.",
          tuple(Check(f"lightfmp-xdeepfm:prune_ratio={r}", ">", 0.5, (CRITEO, ML), metric="gate_rank_tau",
                      ref="lightfmp-xdeepfm",
                      note=f"per seed, the fields ranked by log α after pretraining at prune ratio {r} against at "
                           "the default 0.5; the paper gives no number (a heatmap): tau > 0.5 (over 3 in 4 field "
                           "pairs ordered alike) is our reading of 'consistently'")
                for r in (0.25, 0.75))),
    Claim("L13", L, "Table 2; Sec. 4.1", "On MovieLens and Avazu Light-FMP has the best accuracy of all the feature "
          "selectors, logloss included (XGBoost and OptEm are not implemented; AUC is checked in L5-L7).",
          "xDeepFM logloss Light-FMP / Lasso / PCA / OptFS / AutoField / AdaFS / MvFS: MovieLens 0.5324 / 0.6178 / "
          "0.5334 / 0.6166 / 0.5352 / 0.6166 / 0.6170, Avazu 0.3777 / 0.3907 / 0.3911 / 0.3795 / 0.3788 / 0.3829 / "
          "0.3787. leanrec compares on the DNN backbone, as in L5.",
          tuple(Check("lightfmp", "<", sel, (ML, AVAZU), metric="logloss", paper={ML: 0.5324 - ml, AVAZU: 0.3777 - av})
                for sel, ml, av in (("lasso", 0.6178, 0.3907), ("pca", 0.5334, 0.3911), ("optfs", 0.6166, 0.3795),
                                    ("autofield", 0.5352, 0.3788), ("adafs", 0.6166, 0.3829),
                                    ("mvfs", 0.6170, 0.3787)))),
]

# S15's synthetic logs (run_tables.sh ssr-scale, ssr-scale-5m, ssr-scale-teacher, ssr-scale-teacher-5m)
SCALE_LOGS = (SYNTHETIC_1M, SYNTHETIC_5M, SYNTHETIC_TEACHER, SYNTHETIC_TEACHER_5M)
RIVAL_LOGS = (SYNTHETIC_1M, SYNTHETIC_TEACHER)   # S18's (run_tables.sh ssr-scale-rivals, ssr-scale-rivals-teacher)
# the synthetic logs' AUC ceiling: the generator's own click probability, served by `oracle` (leanrec-baselines)
CEILING = ("ceiling: the generator's click probability (oracle)", "oracle")

# S16 measures learned weights: runs whose hidden weights moved less than their initial norm cannot test it
TRAINED_AWAY = ("relative_change", ">=", 1.0)

# ---- SSR ----------------------------------------------------------------------------------------------------
S = "SSR"
# S19 is about learned projections: views whose projections moved less than their initial norm still show the
# initialiser's (near-orthogonal) similarities, which say nothing about what training does to them
PROJECTIONS_TRAINED = ("view_relative_change", ">=", 1.0)
# ... but whether training pulls the views together shows in the updates W - W_0 themselves (updates pointing the
# same way make the views converge as training goes on), once training moved them by a tenth of their norm
PROJECTIONS_MOVED = ("view_relative_change", ">=", 0.1)
# The ablations (Tables 4-5) also on a reduced SSR-D: the paper's b = 16, d_v = 256 has ~20M backbone parameters
# (minutes a seed on one CPU core for 8K training rows); b = 8, d_v = 64 runs in seconds. Same mechanism, one knob.
SSR_D_SMALL, SSR_S_SMALL = "ssr-d:b=8,d_v=64", "ssr-s:b=8,d_v=64"
SMALL = "reduced SSR (b = 8, d_v = 64)"


def dense_matched(width: int) -> str:
    """A DNN with SSR's embedding dim and three hidden layers of `width`: 264, 408, 616, 912 match the backbone
    parameters of SSR-S with b = 2, 4, 8, 16 on 30 fields (0.27M, 0.53M, 1.06M, 2.1M)."""
    return f"dnn:embedding_dim=16,hidden=[{width},{width},{width}]"


def small_check(a: str, op: str, b: str | float, **kw: Any) -> Check:
    """A check on the reduced SSR, on the two heads, run by `results/run_tables.sh claims-ssr`."""
    return Check(a, op, b, (AVAZU, CRITEO), note=SMALL, section="claims-ssr", **kw)


def small(spec: str, base: str = SSR_D_SMALL) -> str:
    """`spec`'s options on the reduced SSR: small('ssr-d:filter=none') == 'ssr-d:b=8,d_v=64,filter=none'."""
    _, _, opts = spec.partition(":")
    return base + ("," + opts if opts else "")


SSR = [
    Claim("S1", S, "Abstract; Table 3", "SSR-S outperforms the state of the art (RankMixer, the paper's 'strongest "
          "baseline'; on Avazu its Table 3's AutoFIS*, 0.7802, is stronger) on public benchmarks.",
          "AUC SSR-S / RankMixer: Avazu 0.7827 / 0.7772, Criteo 0.8098 / 0.8092, Alibaba 0.6827 / 0.6801 (p < 0.05).",
          (Check("ssr-s", ">", "rankmixer", PUBLIC, paper={AVAZU: 0.7827 - 0.7772, CRITEO: 0.8098 - 0.8092}),)),
    Claim("S2", S, "Abstract; Table 3; Sec. 4.2.1", "SSR-D (ICS) achieves the top AUC and logloss, above RankMixer.",
          "AUC SSR-D / RankMixer: Avazu 0.7835 / 0.7772, Criteo 0.8096 / 0.8092, Alibaba 0.6844 / 0.6801 (on Criteo "
          "SSR-S, 0.8098 and logloss 0.4417, is above SSR-D's 0.8096 / 0.4425 in the paper's own table).",
          (Check("ssr-d", ">", "rankmixer", PUBLIC, paper={AVAZU: 0.7835 - 0.7772, CRITEO: 0.8096 - 0.8092},
                 note="paper defaults b = 16, d_v = 256"),
           Check("ssr-d:b=8,d_v=64", ">", "rankmixer", PUBLIC, note="reduced SSR-D (b = 8, d_v = 64)"),
           Check("ssr-d", "<", "rankmixer", PUBLIC, metric="logloss",
                 paper={AVAZU: 0.3781 - 0.3818, CRITEO: 0.4425 - 0.4427}, note="paper defaults"))),
    Claim("S3", S, "Table 3; Sec. 4.2.2", "SSR-S needs about half of RankMixer's backbone parameters and FLOPs.",
          "Backbone params / FLOPs SSR-S vs RankMixer: Avazu 0.33M / 688.7M vs 0.64M / 1.32G; Criteo 0.48M / "
          "977.6M vs 1.15M / 2.36G.",
          (Check("ssr-s", "<", "rankmixer", PUBLIC, metric="backbone_params",
                 paper={AVAZU: 0.33e6 - 0.64e6, CRITEO: 0.48e6 - 1.15e6}),
           Check("ssr-s", "<", "rankmixer", PUBLIC, metric="flops",
                 paper={AVAZU: 688.7e6 - 1.32e9, CRITEO: 977.6e6 - 2.36e9}))),
    Claim("S4", S, "Table 2; Sec. 4.2.1", "SSR-S beats a dense MLP of comparable parameter count, so the gain comes "
          "from sparsity, not capacity.",
          "Industrial click AUC SSR-S 0.6644 (57M params) vs Dense MLP 0.6593 (60M).",
          (Check("ssr-s", ">", "dnn:hidden=[1024,1024,1024]", (CRITEO, AVAZU),
                 note="DNN sized to SSR-S's ~2M backbone parameters on Criteo"),
           Check("ssr-s", ">", "dnn", PUBLIC, note="zoo DNN [400,400,400], not parameter-matched"))),
    Claim("S5", S, "Table 4", "Sparse filtering is essential: removing it costs the most AUC.",
          "Δ AUC w/o sparse filtering: −0.50 pt (Avazu), −0.37 pt (industrial).",
          (Check("ssr-d", ">", "ssr-d:filter=none", (AVAZU, CRITEO), paper={AVAZU: 0.0050}),
           small_check(SSR_D_SMALL, ">", small("ssr-d:filter=none")))),
    Claim("S6", S, "Table 4", "Multiple views matter: a single view (b = 1) loses AUC.",
          "Δ AUC w/o multi-view: −0.22 pt (Avazu), −0.15 pt (industrial).",
          (Check("ssr-d", ">", "ssr-d:b=1", (AVAZU, CRITEO), paper={AVAZU: 0.0022}),
           small_check(SSR_D_SMALL, ">", "ssr-d:b=1,d_v=64"))),
    Claim("S7", S, "Table 4", "Dynamic filtering (SSR-D, ICS) beats the static random filter (SSR-S).",
          "Δ AUC static vs dynamic: −0.12 pt (Avazu), −0.23 pt (industrial); Table 3: SSR-D / SSR-S 0.7835 / "
          "0.7827 Avazu, 0.8096 / 0.8098 Criteo.",
          (Check("ssr-d", ">", "ssr-s", (AVAZU, CRITEO), paper={AVAZU: 0.0012, CRITEO: 0.8096 - 0.8098}),
           small_check(SSR_D_SMALL, ">", SSR_S_SMALL))),
    Claim("S8", S, "Table 4", "ICS beats a straight-through Top-k filter.",
          "Δ AUC Top-k (STE) vs ICS: −0.18 pt (Avazu), −0.29 pt (industrial).",
          (Check("ssr-d", ">", "ssr-d:filter=topk", (AVAZU, CRITEO), paper={AVAZU: 0.0018}),
           small_check(SSR_D_SMALL, ">", small("ssr-d:filter=topk")))),
    Claim("S9", S, "Table 4", "The gain is not mere regularisation: Dropout instead of the sparse filter loses AUC.",
          "Δ AUC Dropout vs SSR-S: −0.32 pt (Avazu), −0.45 pt (industrial).",
          (Check("ssr-s", ">", "ssr-s:filter=dropout", (AVAZU, CRITEO), paper={AVAZU: 0.0032}),
           small_check(SSR_S_SMALL, ">", small("ssr-s:filter=dropout", SSR_S_SMALL)))),
    Claim("S10", S, "Table 5(A)", "Iterating ICS (T = 5) beats single-step thresholding and gives more sparsity.",
          "Avazu AUC / sparsity: T = 1 0.7821 / 76.4%, T = 2 0.7826 / 88.6%, T = 5 0.7835 / 91.0%.",
          (Check("ssr-d", ">", "ssr-d:ics_iters=1", (AVAZU, CRITEO), paper={AVAZU: 0.7835 - 0.7821}),
           Check("ssr-d", ">", "ssr-d:ics_iters=2", (AVAZU, CRITEO), paper={AVAZU: 0.7835 - 0.7826}),
           Check("ssr-d", ">", "ssr-d:ics_iters=1", (AVAZU, CRITEO), metric="sparsity",
                 paper={AVAZU: 0.910 - 0.764}),
           small_check(SSR_D_SMALL, ">", small("ssr-d:ics_iters=1")),
           small_check(SSR_D_SMALL, ">", small("ssr-d:ics_iters=2")),
           small_check(SSR_D_SMALL, ">", small("ssr-d:ics_iters=1"), metric="sparsity"))),
    Claim("S11", S, "Table 5(B)", "ICS is robust to its initial extinction rate (AUC stable over α ∈ [0.1, 0.5]) "
          "while α regulates sparsity.",
          "Avazu AUC / sparsity: α = 0.01 0.7832 / 80.4%, 0.1 0.7835 / 91.0%, 0.3 0.7833 / 93.3%, 0.5 0.7828 / 94.0%.",
          (Check("ssr-d:ics_alpha=0.5", "==", "ssr-d", (AVAZU, CRITEO), margin=AUC_MARGIN,
                 paper={AVAZU: 0.7828 - 0.7835}),
           Check("ssr-d:ics_alpha=0.01", "==", "ssr-d", (AVAZU, CRITEO), margin=AUC_MARGIN,
                 paper={AVAZU: 0.7832 - 0.7835}, note="α = 0.01 is below the paper's stated range"),
           Check("ssr-d:ics_alpha=0.5", ">", "ssr-d", (AVAZU, CRITEO), metric="sparsity",
                 paper={AVAZU: 0.940 - 0.910}),
           small_check(small("ssr-d:ics_alpha=0.5"), "==", SSR_D_SMALL, margin=AUC_MARGIN),
           small_check(small("ssr-d:ics_alpha=0.01"), "==", SSR_D_SMALL, margin=AUC_MARGIN),
           small_check(small("ssr-d:ics_alpha=0.5"), ">", SSR_D_SMALL, metric="sparsity"))),
    Claim("S12", S, "Table 5(C)", "The learnable rescaling γ improves AUC.",
          "Avazu: w/ γ 0.7835, w/o γ 0.7832.",
          (Check("ssr-d", ">", "ssr-d:ics_gamma=false", (AVAZU, CRITEO), paper={AVAZU: 0.7835 - 0.7832}),
           small_check(SSR_D_SMALL, ">", small("ssr-d:ics_gamma=false")))),
    Claim("S13", S, "Sec. 4.4.2; Fig. 5", "ICS learns high sparsity, higher in the deeper layer.",
          "Fig. 5: sparsity ~75% in layer 1, ~90% in layer 2.",
          (Check("ssr-d", ">", "ssr-d", PUBLIC, metric="sparsity_l2", b_metric="sparsity_l1"),
           Check("ssr-d:b=8,d_v=64", ">", "ssr-d:b=8,d_v=64", PUBLIC, metric="sparsity_l2",
                 b_metric="sparsity_l1"))),
    Claim("S14", S, "Sec. 4.3.1; Fig. 3", "More views (b) is the most reliable way to scale SSR (gains diminish "
          "from b = 8 to 16 on Avazu). Counterpart: AUC rises with b (the comparison with scaling d_v or the depth "
          "is not run).",
          "Fig. 3 (industrial, Avazu): curves only.",
          (Check("ssr-s:b=2", ">", "ssr-s:b=1", (CRITEO, AVAZU)),
           Check("ssr-s:b=4", ">", "ssr-s:b=2", (CRITEO, AVAZU)),
           Check("ssr-s:b=8", ">", "ssr-s:b=4", (CRITEO, AVAZU)),
           Check("ssr-s", ">", "ssr-s:b=8", (CRITEO, AVAZU), note="b = 16 (default) vs 8"))),
    Claim("S15", S, "Abstract; Sec. 4.3.2; Fig. 4", "SSR keeps gaining as it scales (5M → 900M parameters) where "
          "dense MLPs saturate. Counterpart: on the 1M-row synthetic log (800K training rows, one epoch), a "
          "5M-row one from the same generator (4M training rows), and a 1M-row log whose signal is mostly a fixed "
          "random network over its informative fields (a teacher: `synthetic.teacher_width = 128`) and 5M rows of "
          "it (the two end points of each curve only), which leave the models room below the log's ceiling (the generator's own click probability, `oracle`, drawn on "
          "each curve), SSR-S from b = 2 to 16 views (0.27M → 2.1M backbone parameters) against DNNs with SSR's embedding dim (16) "
          "and three hidden layers of the width that matches each size's backbone parameters (264 → 912).",
          "Fig. 4 (industrial): curves only.",
          (Check("ssr-s", ">", "ssr-s:b=2", SCALE_LOGS, note="SSR-S keeps gaining: b = 16 vs b = 2"),
           Check(dense_matched(912), "<=", dense_matched(264), SCALE_LOGS, margin=AUC_MARGIN,
                 note="the dense MLP saturates: 8x the backbone parameters gain at most 0.001"),
           Check("ssr-s", ">", dense_matched(912), SCALE_LOGS, note="at 2.1M backbone parameters each"),
           Check("ssr-s:b=2", ">", dense_matched(264), SCALE_LOGS, note="at 0.27M backbone parameters each"))),
    Claim("S16", S, "Abstract; Introduction; Fig. 1", "Dense CTR models are implicitly sparse: 92% of learned "
          "weights are near zero and 80% of weight power sits in 4% of input dimensions.",
          "Fig. 1 (industrial model): 92% of the hidden layer's weights below 1e-3; 80% of its weight power in "
          "the top 4% of input dimensions.",
          (Check("magprune", ">=", 0.92, PUBLIC, metric="near_zero_share", margin=0.01, requires=TRAINED_AWAY,
                 note="the zoo DNN ([400,400,400], trained as the dnn row, no L2), before pruning: its hidden "
                      "layers' weights, pooled; it has batch norm after each layer, which leaves a layer's weight "
                      "scale free. Weights still near their initialisation describe the initialiser, not what was "
                      "learned: the check needs training to have moved them by at least their initial norm"),
           Check("magprune", ">=", 0.80, PUBLIC, metric="top_power_share", margin=0.01, requires=TRAINED_AWAY,
                 note="its first hidden layer (the one reading the embeddings); power of an input dimension = "
                      "sum of its squared weights"))),
    Claim("S18", S, "Sec. 4.3.2; Fig. 4", "SSR scales more steeply than the strongest baselines RankMixer and Wukong: "
          "the gap grows with the parameter budget.",
          "Fig. 4 (industrial): curves only. Counterpart: S15's 1M-row synthetic log and its teacher log, RankMixer "
          "(token width 48 → 128) and Wukong (FMB and top-MLP width 128 → 640) at SSR-S's backbone sizes (0.3M → 2.1M parameters).",
          (*(Check("ssr-s", ">", "ssr-s:b=2", RIVAL_LOGS, metric="auc_gain", ref=rival(widths[-1]),
                   b_ref=rival(widths[0]),
                   note=f"SSR-S's AUC gain over {name} at 2.1M backbone parameters against its gain at 0.3M")
             for name, rival, widths in (("RankMixer", rankmixer_matched, RANKMIXER_WIDTHS),
                                         ("Wukong", wukong_matched, WUKONG_WIDTHS))),
           Check("ssr-s", ">", rankmixer_matched(RANKMIXER_WIDTHS[-1]), RIVAL_LOGS,
                 note="at 2.1M backbone parameters each"),
           Check("ssr-s", ">", wukong_matched(WUKONG_WIDTHS[-1]), RIVAL_LOGS,
                 note="at 2.1M backbone parameters each"))),
    Claim("S19", S, "Sec. 4.4.3; Fig. 6", "The views learn diverse subspaces: low pairwise cosine similarity between "
          "the views' projection matrices, in both layers, without a diversity regulariser.",
          "Fig. 6: heatmaps only (no numbers). leanrec reads \"low\" as a mean |cosine| below 0.1 between different "
          "views' W^proj (each flattened), a tenth of the way to identical views; independent random matrices of "
          "this size give about 0.001. Where training moved the projections by less than their initial norm, the "
          "trained cosines still describe the initialiser; the cosines of the updates W^proj − W₀ then say whether "
          "training itself pulls the views together (updates pointing the same way) or keeps them apart, the "
          "same \"below 0.1\" reading.",
          (Check("ssr-d", "<", 0.1, (AVAZU, CRITEO), metric="view_cosine", requires=PROJECTIONS_TRAINED,
                 note="the paper's b = 16, d_v = 256, both layers averaged (each layer's numbers and its b x b "
                      "matrix are in the record's extra.view_diversity)"),
           Check("ssr-d", "<", 0.1, (AVAZU, CRITEO), metric="update_cosine", requires=PROJECTIONS_MOVED,
                 note="the paper's b = 16, d_v = 256"),
           small_check(SSR_D_SMALL, "<", 0.1, metric="view_cosine", requires=PROJECTIONS_TRAINED),
           small_check(SSR_D_SMALL, "<", 0.1, metric="update_cosine", requires=PROJECTIONS_MOVED),
           Check(SSR_D_SMALL, "<", 0.1, (SYNTHETIC_1M,), metric="view_cosine", requires=PROJECTIONS_TRAINED,
                 note=f"{SMALL}, 783 steps on 800K rows"),
           Check(SSR_D_SMALL, "<", 0.1, (SYNTHETIC_1M,), metric="update_cosine", requires=PROJECTIONS_MOVED,
                 note=f"{SMALL}, 783 steps on 800K rows"))),
    Claim("S17", S, "Table 2; Table 6", "SSR-D beats RankMixer on the billion-row AliExpress log and lifts CTR "
          "+2.1%, orders +3.2%, GMV +3.5% online at +1 ms.",
          "Industrial click AUC 0.6667 vs 0.6621; online A/B test.",
          untestable="industrial data and online traffic are not available."),
]

# ---- i-Razor ------------------------------------------------------------------------------------------------
IR = "i-Razor"
# Table 7 (Avazu AUC): backbone, FDE, the configuration searched on the MLP, the model-consistent one
I_TABLE7 = (("deepfm", 0.7824, 0.7832, 0.7835), ("xdeepfm", 0.7840, 0.7843, 0.7848), ("ipnn", 0.7852, 0.7854, 0.7859))
IRAZOR = [
    Claim("I1", IR, "Abstract; Tables 3-4", "i-Razor reaches higher AUC than fixed-dimension embeddings (FDE) "
          "while dropping fields.",
          "AUC i-Razor / FDE: Avazu 0.7823 / 0.7811, Criteo 0.7996 / 0.7994 (Table 3's * is against AutoDim, +0.0003; "
          "no test against FDE is reported). The paper's FDE gives every "
          "field the searched dim (30 on Avazu, 25 on Criteo, = i-Razor's largest candidate); leanrec's `dnn` uses the "
          "zoo default dim 10, `dnn:embedding_dim=30` the paper's.",
          (Check("irazor", ">", "dnn", PUBLIC, paper={AVAZU: 0.7823 - 0.7811, CRITEO: 0.7996 - 0.7994},
                 note="FDE at dim 10"),
           Check("irazor", ">", "dnn:embedding_dim=30", PUBLIC, paper={AVAZU: 0.7823 - 0.7811},
                 note="FDE at dim 30"))),
    Claim("I2", IR, "Abstract; Tables 3-4", "i-Razor cuts embedding parameters against FDE.",
          "Params i-Razor / FDE: Avazu 12.32M / 19.36M (−36%; Table 3's −26% is against AutoDim's 16.63M), "
          "Criteo 18.13M / 29.47M (−38%); FDE at dim 30 / 25 (see I1).",
          (Check("irazor", "<", "dnn", PUBLIC, metric="emb_params",
                 paper={AVAZU: (12.32 - 19.36) * 1e6, CRITEO: (18.13 - 29.47) * 1e6}, note="FDE at dim 10"),
           Check("irazor", "<", "dnn:embedding_dim=30", PUBLIC, metric="emb_params",
                 paper={AVAZU: (12.32 - 19.36) * 1e6}, note="FDE at dim 30"))),
    Claim("I3", IR, "Tables 3-5", "CPT pruning beats argmax dimension selection (AutoDim/DARTS-style, cpt = 0).",
          "AUC i-Razor / AutoDim: Avazu 0.7823 / 0.7820, Criteo 0.7996 / 0.7983; Table 5 (w/ 0) Avazu-FG 0.7890 / "
          "0.7883, Criteo-FG 0.8019 / 0.8013.",
          (Check("irazor", ">", "irazor-argmax", PUBLIC + ALL_FG,
                 paper={AVAZU: 0.7823 - 0.7820, CRITEO: 0.7996 - 0.7983, FG[AVAZU]: 0.7890 - 0.7883,
                        FG[CRITEO]: 0.8019 - 0.8013}),)),
    Claim("I4", IR, "Tables 3-4 (FG)", "With all cross fields added (FG), i-Razor's joint selection and dimension "
          "search beats FDE, by a wide margin on Avazu-FG.",
          "AUC i-Razor / FDE: Avazu-FG 0.7896 / 0.7814 (+0.0082), Criteo-FG 0.8019 / 0.8017 (Table 3's +0.0048** is "
          "against AutoFIS w/ i-Razor, not FDE). The paper's "
          "FG FDE dims are 1 (Avazu-FG) and 5 (Criteo-FG) per field; leanrec's `dnn` uses 10.",
          (Check("irazor", ">", "dnn", ALL_FG, paper={FG[AVAZU]: 0.7896 - 0.7814, FG[CRITEO]: 0.8019 - 0.8017}),)),
    Claim("I5", IR, "Tables 3-4 (FG)", "On FG data i-Razor needs fewer embedding parameters than FDE (−7% on "
          "Avazu-FG, −70% on Criteo-FG).",
          "Params i-Razor / FDE: Avazu-FG 40.85M / 43.89M, Criteo-FG 169.03M / 566.62M (on Avazu-FG the paper "
          "trades parameters for AUC against its best baseline: +83% params, Table 3).",
          (Check("irazor", "<", "dnn", ALL_FG, metric="emb_params",
                 paper={FG[AVAZU]: (40.85 - 43.89) * 1e6, FG[CRITEO]: (169.03 - 566.62) * 1e6}),)),
    Claim("I6", IR, "Table 5", "The dimension-0 ('drop the field') candidate helps: variants with it beat those "
          "without, and keep fewer fields.",
          "AUC w/ 0 / w/o 0: CPT Avazu-FG 0.7890 / 0.7827, Criteo-FG 0.8019 / 0.8015; argmax 0.7883 / 0.7826, "
          "0.8013 / 0.8012. Fields (Avazu-FG): 80 vs 300.",
          (Check("irazor", ">", "irazor:zero_dim=false", (FG[AVAZU], FG[CRITEO]),
                 paper={FG[AVAZU]: 0.7890 - 0.7827, FG[CRITEO]: 0.8019 - 0.8015}),
           Check("irazor-argmax", ">", "irazor-argmax:zero_dim=false", (FG[AVAZU], FG[CRITEO]),
                 paper={FG[AVAZU]: 0.7883 - 0.7826, FG[CRITEO]: 0.8013 - 0.8012}),
           Check("irazor", "<", "irazor:zero_dim=false", (FG[AVAZU], FG[CRITEO]), metric="fields",
                 paper={FG[AVAZU]: 80 - 300, FG[CRITEO]: 599 - 780}))),
    Claim("I7", IR, "Table 5", "CPT pruning buys its AUC gain with more fields and parameters than argmax.",
          "Params CPT / argmax (w/ 0): Avazu-FG 67.32M / 58.14M, Criteo-FG 208.71M / 84.11M.",
          (Check("irazor", ">", "irazor-argmax", ALL_FG, metric="emb_params",
                 paper={FG[AVAZU]: (67.32 - 58.14) * 1e6, FG[CRITEO]: (208.71 - 84.11) * 1e6}),)),
    Claim("I8", IR, "Fig. 4", "AUC rises with cpt up to about 0.3 and drops beyond 0.4; a larger λ gives fewer "
          "parameters.",
          "Fig. 4 (Avazu-FG): curves only.",
          (Check("irazor", ">", "irazor:cpt=0.1", (FG[AVAZU], FG[ML])),
           Check("irazor", ">", "irazor:cpt=0.5", (FG[AVAZU], FG[ML])),
           Check("irazor:reg_lambda=0.01", "<", "irazor", (FG[AVAZU], FG[ML]), metric="emb_params"))),
    Claim("I9", IR, "Table 6", "i-Razor is insensitive to how the candidate dimensions are partitioned.",
          "Avazu AUC: uniform 0.7821, linear 0.7823, exponential 0.7822.",
          (Check("irazor:candidates=[0,4,8,12,16,20,24,28]", "==", "irazor", (AVAZU, CRITEO), margin=AUC_MARGIN,
                 paper={AVAZU: 0.7821 - 0.7822}),
           Check("irazor:candidates=[0,1,3,6,10,15,21,28]", "==", "irazor", (AVAZU, CRITEO), margin=AUC_MARGIN,
                 paper={AVAZU: 0.7823 - 0.7822}))),
    Claim("I10", IR, "Table 7", "i-Razor's model-consistent configuration improves DeepFM, xDeepFM and IPNN over "
          "their FDE versions, with fewer parameters.",
          "Avazu AUC i-Razor config / FDE: DeepFM 0.7835 / 0.7824, xDeepFM 0.7848 / 0.7840, IPNN 0.7859 / 0.7852.",
          tuple(Check(f"irazor:backbone={bb}", ">", bb, (CRITEO, AVAZU), paper={AVAZU: own - fde})
                for bb, fde, _, own in I_TABLE7)
          + tuple(Check(f"irazor:backbone={bb}", "<", bb, (CRITEO, AVAZU), metric="emb_params")
                  for bb in ("deepfm", "xdeepfm", "ipnn"))),
    Claim("I11", IR, "Table 7", "A configuration searched on the MLP transfers to other models and still beats FDE, "
          "but the model-consistent one is best.",
          "Avazu AUC, FDE / MLP config / model-consistent: DeepFM 0.7824 / 0.7832 / 0.7835, xDeepFM 0.7840 / 0.7843 / "
          "0.7848, IPNN 0.7852 / 0.7854 / 0.7859.",
          tuple(Check(f"irazor-transfer:backbone={bb}", ">", bb, (CRITEO, AVAZU), paper={AVAZU: mlp - fde},
                      note="the configuration i-Razor searched on the DNN, retrained on this backbone")
                for bb, fde, mlp, _ in I_TABLE7)
          + tuple(Check(f"irazor:backbone={bb}", ">", f"irazor-transfer:backbone={bb}", (CRITEO, AVAZU),
                        paper={AVAZU: own - mlp}) for bb, _, mlp, own in I_TABLE7)),
    Claim("I12", IR, "Tables 3-4; Sec. 4.3", "Joint selection and dimension search beats sequential (AutoFIS then "
          "i-Razor / AutoDim), and i-Razor's field selection alone (w/ FDE) already matches FDE. Counterpart: the "
          "second half (AutoFIS is not implemented): the fields i-Razor keeps, each at FDE's dim (10, the `dnn` "
          "row's), against FDE on every field; and i-Razor's searched dims against that fixed dim.",
          "AUC i-Razor w/ FDE / FDE: Avazu 0.7812 / 0.7811, Criteo 0.7996 / 0.7994, Avazu-FG 0.7870 / 0.7814, "
          "Criteo-FG 0.8018 / 0.8017; Avazu-FG i-Razor 0.7896 vs AutoFIS w/ i-Razor 0.7848.",
          (Check("irazor-fde", ">=", "dnn", (AVAZU, CRITEO, FG[AVAZU], FG[CRITEO]), margin=AUC_MARGIN,
                 paper={AVAZU: 0.7812 - 0.7811, CRITEO: 0.7996 - 0.7994, FG[AVAZU]: 0.7870 - 0.7814,
                        FG[CRITEO]: 0.8018 - 0.8017}),
           Check("irazor", ">", "irazor-fde", (AVAZU, CRITEO, FG[AVAZU], FG[CRITEO]),
                 paper={AVAZU: 0.7823 - 0.7812, CRITEO: 0.7996 - 0.7996, FG[AVAZU]: 0.7896 - 0.7870,
                        FG[CRITEO]: 0.8019 - 0.8018},
                 note="the searched dims against one fixed dim on the same searched fields (Tables 3-4: i-Razor "
                      "against i-Razor w/ FDE)"))),
    Claim("I13", IR, "Sec. 4.6", "The whole two-stage training fits in 3 h (Avazu) / 6 h (Criteo) on one A100.",
          "Stated.",
          untestable="full-size datasets and GPU timing; leanrec's committed runs are CPU runs on samples."),
    Claim("I14", IR, "Tables 3-4", "i-Razor beats the deep feature selectors AutoField and AdaFS, each selecting "
          "fields for an FDE model. Counterpart: leanrec's autofield and adafs (keep ratio 0.5) retraining the zoo "
          "DNN at dim 10, the `dnn` row's FDE.",
          "AUC i-Razor / AutoField w/ FDE / AdaFS w/ FDE: Avazu 0.7823 / 0.7809 / 0.7812, Criteo 0.7996 / 0.7985 / "
          "0.7992.",
          (Check("irazor", ">", "autofield", (AVAZU, CRITEO), paper={AVAZU: 0.7823 - 0.7809, CRITEO: 0.7996 - 0.7985}),
           Check("irazor", ">", "adafs", (AVAZU, CRITEO), paper={AVAZU: 0.7823 - 0.7812, CRITEO: 0.7996 - 0.7992}))),
]

CLAIMS: list[Claim] = REACTION + LIGHTFMP + SSR + IRAZOR


# ---- curves: the "curves only" figures, drawn from the records next to their claims ----------------------------
DTF_TOWERS = ((1, "reaction-baseline"), (2, "reaction-dtf"),
              (3, DTF_3),
              (4, DTF_4))
PRUNE = tuple((r, f"lightfmp-xdeepfm:prune_ratio={r}") for r in (0.0, 0.25, 0.5, 0.75))
SSR_VIEWS = tuple((b, f"ssr-s:b={b}") for b in (1, 2, 4, 8, 16))
CURVES: list[Curve] = [
    *(Curve("R10", d, "towers in the DTF cohort", "towers (1 = the single-tower baseline, 2 = REACTION's default)",
            (("Baseline + DTF", DTF_TOWERS),)) for d in (CRITEO, AVAZU)),
    *(Curve("R14", d, "dense-layer weights kept (Fig. 1(c))", "share of the DNN's dense-layer weights kept",
            (("DNN, magnitude-pruned", tuple((k, f"magprune:keep={k}") for k in DENSE_KEEP)),),
            reference=(("DNN, unpruned", "dnn"),)) for d in (CRITEO, AVAZU)),
    *(Curve("L9", d, "pruning ratio (Fig. 2c)", "share of fields pruned", (("Light-FMP on xDeepFM", PRUNE),),
            reference=(("xDeepFM, unpruned", "xdeepfm"),)) for d in (CRITEO, ML)),
    Curve("L10", CRITEO, "pretraining subset (Fig. 2d)", "pretraining rows |D_S| (of 8K training rows)",
          (("Light-FMP on xDeepFM", tuple((n, f"lightfmp-xdeepfm:pretrain_rows={n}") for n in (500, 2000, 4000))),),
          reference=(("xDeepFM, unpruned", "xdeepfm"),)),
    Curve("L10", FRAPPE, "pretraining subset (Fig. 2d)", "pretraining rows |D_S| (of 46K training rows)",
          (("Light-FMP on DNN", tuple((n, f"lightfmp:pretrain_rows={n}") for n in (2000, 8000))),
           ("Light-FMP on DeepFM", tuple((n, f"lightfmp-deepfm:pretrain_rows={n}") for n in (2000, 8000)))),
          reference=(("DNN", "dnn"), ("DeepFM", "deepfm"))),
    *(Curve("S14", d, "views b (Fig. 3)", "views b", (("SSR-S", SSR_VIEWS),), reference=(("DNN", "dnn"),),
            log_x=True) for d in (CRITEO, AVAZU)),
    *(Curve("S15", d, "SSR against parameter-matched dense MLPs (Fig. 4)",
            "backbone parameters (no embeddings), log scale",
            (("SSR-S, b = 2 … 16", tuple((b, f"ssr-s:b={b}") for b in (2, 4, 8, 16))),
             ("DNN [w, w, w], w = 264 … 912", tuple((w, dense_matched(w)) for w in (264, 408, 616, 912)))),
            reference=(CEILING,), x_metric="backbone_params", log_x=True) for d in SCALE_LOGS),
    *(Curve("S18", d, "SSR against RankMixer, Wukong and dense MLPs as each grows (Fig. 4)",
            "backbone parameters (no embeddings), log scale",
            (("SSR-S, b = 2 … 16", tuple((b, f"ssr-s:b={b}") for b in (2, 4, 8, 16))),
             ("RankMixer, token width 48 … 128", tuple((w, rankmixer_matched(w)) for w in RANKMIXER_WIDTHS)),
             ("Wukong, width 128 … 640", tuple((w, wukong_matched(w)) for w in WUKONG_WIDTHS)),
             ("DNN [w, w, w], w = 264 … 912", tuple((w, dense_matched(w)) for w in (264, 408, 616, 912)))),
            reference=(CEILING,), x_metric="backbone_params", log_x=True) for d in RIVAL_LOGS),
    *(Curve("I8", d, "cumulative-probability threshold (Fig. 4)", "cpt",
            (("i-Razor", tuple((c, f"irazor:cpt={c}") for c in (0.1, 0.3, 0.5))),),
            reference=(("argmax (cpt = 0)", "irazor-argmax"),)) for d in (FG[AVAZU], FG[ML])),
]

# Figures drawn as heatmaps (SSR Fig. 6: the views' pairwise cosine similarity, per layer, then the same of what
# training added to them)
HEATMAPS: list[Heatmap] = [
    Heatmap("S19", d, spec, "cosine similarity between the views' projections W^proj (Fig. 6), and between their "
            "updates W^proj − W₀ where recorded",
            lambda r: [(f"layer {i + 1}{part}", layer[key])
                       for key, part in (("cosine", ""), ("update_cosine", ", update"))
                       for i, layer in enumerate(r["extra"]["view_diversity"]["layers"]) if key in layer])
    for spec, d in [(s, d) for s in ("ssr-d", SSR_D_SMALL) for d in (CRITEO, AVAZU)] + [(SSR_D_SMALL, SYNTHETIC_1M)]
]
