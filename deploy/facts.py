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


class FirewallLoaded(FactBase):
    """True when the kernel holds the firewall's input chain (``inet filter input``): false on
    a host where someone ran ``nft flush ruleset``, though /etc/nftables.conf is unchanged."""

    def command(self):
        return "nft list chain inet filter input >/dev/null 2>&1 && echo yes || echo no"

    def process(self, output):
        return output[0] == "yes"
