# Validation against the JSON schemas of snakemake/schemas/, reported as one line naming the key.

from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


def check_schema(data, schema, where):
    """Validate ``data`` (a dict; schema defaults filled in) against ``schemas/<schema>``.

    Raises a WorkflowError ``WHERE key K: MESSAGE`` (``WHERE: MESSAGE`` for the top level).
    """
    path = Path(workflow.basedir, "schemas", schema)
    try:
        validate(data, str(path))
    except WorkflowError as err:
        error = err.__context__  # snakemake raises while handling jsonschema's ValidationError
        key = ".".join(str(part) for part in getattr(error, "absolute_path", []))
        message = getattr(error, "message", str(err).splitlines()[-1])
        raise WorkflowError(f"{where}{f' key {key}' if key else ''}: {message} (schema: {path})") from None
