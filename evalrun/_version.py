"""The version of evalrun (read by the build, too)."""

__version__ = "0.1.0"

#: the name pip installs evalrun by (``evalrun`` on PyPI is another project)
DISTRIBUTION = "evalrun-cli"
#: where evalrun is developed (GitHub owner/name), and its composite action there
REPOSITORY = "OWNER/evalrun"
ACTION = f"{REPOSITORY}/.github/actions/evalrun"
#: the CPU build of torch (the default Linux wheel pulls GBs of CUDA libraries)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
