"""A run's record: the run dir's files (``rundir``: :class:`~cifarlab.runs.rundir.RunDir`, their one reader and
writer), ``metrics.json`` typed (``result``: :class:`~cifarlab.runs.result.TrainResult`), a finished run read back
with its network and data (``run``: :class:`~cifarlab.runs.run.TrainedRun`), where the code and machine came from
(``provenance``), what older versions wrote (``legacy``) and the summary of a multirun sweep (``sweeps``)."""
