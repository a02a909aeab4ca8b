"""Facts about the stack that pyinfra does not ship: what the deploy must check before changing."""

from pyinfra.api import FactBase


class LoginUser(FactBase):
    """The user pyinfra logged in as (before sudo)."""

    def command(self):
        return 'echo "${SUDO_USER:-$(id -un)}"'

    def process(self, output):
        return output[0]


class CpuCount(FactBase):
    """Number of online CPUs."""

    def command(self):
        return "nproc"

    def process(self, output):
        return int(output[0])
