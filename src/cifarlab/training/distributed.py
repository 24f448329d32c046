"""Lightning's DDP under Hydra: one run dir per job, on one machine or under SLURM.

Lightning starts the ranks of one machine by running the entry script again, once per extra device
(``_SubprocessScriptLauncher``). Under Hydra it re-runs ``sys.argv`` with ``hydra.run.dir`` set to
the *run* dir, which is right for a single run only: in a multirun each rank would start the whole
sweep again in new dirs, and under submitit ``sys.argv`` is submitit's own runner
(lightning-hydra-template #393; Lightning #11617, #18175). :func:`rank_command` builds the rank's
command from the job itself: the entry script, the job's overrides (one value per swept key) and
its output dir. :func:`ddp_job` installs it for one Hydra job and, when the job ends, undoes what the
launcher left in the process (the process group, ``LOCAL_RANK`` and friends, the thread count), so
that the next job of a sweep run in the same process starts its own ranks.

Under SLURM (``hydra/launcher=slurm``) srun starts one task per device and Lightning's
``SLURMEnvironment`` reads the ranks from SLURM's variables; nothing is re-run. A requeued job
continues from :func:`requeued_checkpoint`.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.strategies.launchers import subprocess_script

from cifarlab.runs.rundir import RunDir

# What Lightning's launcher sets in the launching process (lightning/pytorch/strategies/launchers/subprocess_script.py,
# lightning/fabric/utilities/distributed.py:_set_num_threads_if_needed); left set, the next job of a sweep would
# take LOCAL_RANK as a sign that its ranks were started by someone else and wait for them forever.
LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "OMP_NUM_THREADS")

# Hydra overrides a rank does not repeat: it is one run in its job's dir, not a sweep or a launch.
_NOT_FOR_RANKS = ("hydra.mode", "hydra/launcher", "hydra.launcher", "hydra/sweeper", "hydra.sweeper", "hydra.sweep",
                  "hydra.run", "hydra.job.name", "hydra.output_subdir")


def rank_command(script: str | Path, local_rank: int) -> tuple[list[str], str]:
    """The command and working directory that start local rank ``local_rank`` of the current Hydra job.

    ``python <script> --config-name=<job's config> <job's overrides> hydra.run.dir=<job's output dir>
    hydra.output_subdir=null hydra.job.name=<job name>_rank<local_rank>``, run in the directory the
    job was launched from: the rank composes the same config, writes into the same run dir, keeps no
    ``.hydra/`` copy and logs to ``<job name>_rank<k>.log`` there.

    Args:
        script: the entry script (``train.py``), whose ``@hydra.main`` composes the config.
        local_rank: the rank on this machine, 1 .. devices - 1 (rank 0 is the calling process).
    """
    hydra = HydraConfig.get()
    passed = [o for o in hydra.overrides.hydra if not o.lstrip("+~").startswith(_NOT_FOR_RANKS)]
    command = [sys.executable, str(Path(script).resolve()), f"--config-name={hydra.job.config_name}",
               *passed, *hydra.overrides.task,
               f'hydra.run.dir="{hydra.runtime.output_dir}"', "hydra.output_subdir=null",
               f"hydra.job.name={hydra.job.name}_rank{local_rank}"]
    return command, hydra.runtime.cwd


@contextlib.contextmanager
def ddp_job(script: str | Path) -> Iterator[None]:
    """Run one Hydra job (the body of the ``with``) so that Lightning's DDP launcher starts its ranks
    with :func:`rank_command`; afterwards destroy the job's process group and restore
    :data:`LAUNCHER_ENV` and torch's thread count as they were before the job.

    Lightning 2.6 exposes no hook for the rank command, so the launcher module's
    ``_hydra_subprocess_cmd`` is replaced for the duration (``tests/test_ddp.py`` runs this path).
    """
    saved_env = {name: os.environ.get(name) for name in LAUNCHER_ENV}
    threads = torch.get_num_threads()
    original = subprocess_script._hydra_subprocess_cmd
    subprocess_script._hydra_subprocess_cmd = functools.partial(rank_command, script)
    try:
        yield
    finally:
        subprocess_script._hydra_subprocess_cmd = original
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        torch.set_num_threads(threads)


def requeued_checkpoint(run_dir: RunDir) -> str | None:
    """The checkpoint a requeued SLURM job continues from, or ``None`` for a first start.

    A job is requeued (``SLURM_RESTART_COUNT`` > 0) after Lightning's ``SLURMEnvironment`` caught the
    preemption signal (``--signal=USR1@90``), wrote ``hpc_ckpt_<n>.ckpt`` into the run dir
    (``trainer.default_root_dir``) and ran ``scontrol requeue``, or after SLURM requeued it itself
    (``--requeue``, a node failure). The requeued job runs the same job in the same run dir, and
    continues from the newest of ``hpc_ckpt_*.ckpt`` and ``checkpoints/last.ckpt`` there
    (:meth:`RunDir.requeue_checkpoint`).
    """
    if int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) <= 0:
        return None
    checkpoint = run_dir.requeue_checkpoint()
    return None if checkpoint is None else str(checkpoint)
