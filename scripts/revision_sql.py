"""Print the offline SQL of each Alembic revision of a service, one file per revision, for review and linting.

uv run python scripts/revision_sql.py OUT_DIR        # every service
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smartpos_cli.migrate import SERVICES, alembic_config


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for service in SERVICES.values():
        config = alembic_config(service)
        script = ScriptDirectory.from_config(config)
        for revision in reversed(list(script.walk_revisions())):
            start = revision.down_revision or "base"
            buffer = io.StringIO()
            config.output_buffer = buffer
            with contextlib.redirect_stdout(buffer):
                command.upgrade(config, f"{start}:{revision.revision}", sql=True)
            name = Path(revision.path).stem
            (out / f"{service.section}__{name}.sql").write_text(buffer.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
