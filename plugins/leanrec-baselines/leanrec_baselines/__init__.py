"""leanrec-baselines: the baseline CTR backbone zoo, registered as leanrec methods (family "backbone")."""
