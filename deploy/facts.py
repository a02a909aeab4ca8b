"""Facts about the stack that pyinfra does not ship: what the deploy must check before changing."""

from pyinfra.api import FactBase


class AppliedMigrations(FactBase):
    """Ids of the yoyo migrations applied to ``database`` (empty before the first run)."""

    def command(self, database):
        return (
            f"runuser -u postgres -- psql -d {database} -Atc 'SELECT migration_id FROM _yoyo_migration' "
            "2>/dev/null || true"
        )

    def process(self, output):
        return sorted(line for line in output if line)


class SymlinkTarget(FactBase):
    """Where the symlink ``path`` points, or None when it is not a symlink."""

    def command(self, path):
        return f"readlink {path} || true"

    def process(self, output):
        return output[0] if output and output[0] else None


class CpuCount(FactBase):
    """Number of online CPUs."""

    def command(self):
        return "nproc"

    def process(self, output):
        return int(output[0])
