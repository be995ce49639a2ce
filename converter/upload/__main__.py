"""``python -m converter.upload FHIR_DIR --server URL ...``: the upload command on its own (the same function,
options and defaults as ``inoconv upload``)."""

import typer

from converter.upload.commands import upload_command

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
app.command()(upload_command)

if __name__ == "__main__":
    app()
