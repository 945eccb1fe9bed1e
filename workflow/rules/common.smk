# Config loading, validation and sweep enumeration (shared by all rules).
#
# The config is *not* loaded with a `configfile:` directive: Snakemake would deep-merge
# `--configfile other.yaml` into it, mixing the method catalogues of two sweeps. Instead,
# workflow/config/default.yaml is used only when no config with a 'sweeps' key was given. The
# files given with --configfile are read again with ml2bench's YAML loader (YAML 1.2 numbers such
# as 5e-1, duplicate keys rejected with FILE:LINE), and --config KEY=VALUE values are read as YAML
# like `ml2bench run --set` (fork_server=false and fork_server=False mean the same): a sweep
# means the same under Snakemake as under `ml2bench verify --configfile`.
#
# Sweep enumeration (the snakemake.utils.Paramspace pattern, generalised to one parameter space
# per method): ml2bench/sweep/jobs.py expands the config into one job per (problem id, method,
# hyper-parameter point, seed); a point's directory name is Paramspace-style `key~value_key~value`
# ("default" for the method's defaults). JOBS maps the wildcards to the job.
import json
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

WORKFLOW_DIR = Path(workflow.basedir) / "workflow"
from ml2bench.sweep import jobs as _sweep  # noqa: E402

try:
    _loaded = _sweep.workflow_config(workflow.config_settings.configfiles, workflow.config_settings.config)
    config.clear()
    config.update(_loaded)
    _sweep.check_finite(config)
    _sweep.validate_schema(config)  # one line naming the offending key (Snakemake's dumps the schema)
    validate(config, str(_sweep.SCHEMA))  # fills the schema's defaults
    JOB_LIST = _sweep.expand(config)
    TARGETS = _sweep.targets(config)
except _sweep.SweepError as err:
    raise WorkflowError(str(err)) from None

JOBS = {job.key: job for job in JOB_LIST}
PROBLEM_IDS = sorted({job.problem_id for job in JOB_LIST})
RUN_DIRS = [job.outdir for job in JOB_LIST]
# Re-runs repair: an interrupted commit of a run's records is completed, and a corrupt run file
# (truncated copy, full disk, garbage) is moved to <run>/corrupt/ before the DAG is built, so its
# train job is missing and runs again (rule all requires every run's files). Only the main
# process does this, not group/cluster sub-processes; a dry run (-n) changes nothing and says
# what a real run would do.
# (workflow.dryrun is known only once jobs execute; the output settings know it while parsing)
DRY_RUN = bool(workflow.dryrun or getattr(workflow.output_settings, "dryrun", False))
if workflow.is_main_process:
    from ml2bench.sweep.verify import repair as _repair

    try:
        for _line in _repair(RUN_DIRS, dry_run=DRY_RUN):
            print(f"ml2bench: {_line}", file=sys.stderr)
    except OSError as err:
        raise WorkflowError(f"ml2bench: cannot repair the run folders: {err}; make results/ writable") from None
# Figures and tables: one list, ml2bench/analysis/catalog.py (the report and the tests read it too)
from ml2bench.analysis import catalog as _catalog  # noqa: E402

FIGURE_NAMES = [f.name for f in _catalog.problem_figures()]
SWEEP_FIGURE_NAMES = [f.name for f in _catalog.sweep_figures()]
TABLE_FILES = _catalog.table_files()
# How jobs call ml2bench: the console script when installed, else this interpreter's module.
# The interpreter's path is quoted: it may hold spaces.
PYTHON = shlex.quote(sys.executable)
ML2BENCH = config.get("ml2bench_cmd") or (
    "ml2bench" if __import__("shutil").which("ml2bench") else f"{PYTHON} -m ml2bench"
)


wildcard_constraints:
    problem=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    method=r"[A-Za-z0-9_]+",
    point=r"[A-Za-z0-9._~+-]+",
    seed=r"\d+",


def job_of(wildcards):
    key = (wildcards.problem, wildcards.method, wildcards.point, int(wildcards.seed))
    if key not in JOBS:
        raise WorkflowError(f"no job {key} in this sweep config")
    return JOBS[key]


# The software of every job (snakemake --sdm conda; otherwise the environment Snakemake runs in):
# the repository's one environment file (it installs this checkout with pip, so run from it).
CONDA_ENV = "../../environment.yml"


# The fork server of local runs (workflow/rules/train.smk starts it in onstart; when it cannot
# start, the jobs run as plain processes).
_FORK_SERVER = {}


def _use_fork_server():
    # --config fork_server=false and =False both arrive as the boolean False (common.smk reads
    # --config values as YAML; the schema allows only booleans)
    return bool(config.get("fork_server", True)) and workflow.local_exec and not workflow.remote_exec


def _stop_fork_server():
    server = _FORK_SERVER.pop("server", None)
    if server is not None:
        server.close()
        os.environ.pop("ML2BENCH_SERVER", None)
