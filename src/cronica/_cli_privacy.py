"""``cronica forget``: erase a data subject's personal data (crypto-shredding).

Registered on the ``cronica`` app by :mod:`cronica.cli`.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

import cronica
from cronica._validation import MAX_REASON_LENGTH
from cronica.audit import Audit
from cronica.cli import JsonFlag, StoreURL, _reports_errors, app
from cronica.privacy.erasure import check_forget_arguments
from cronica.privacy.erasure import forget as forget_subject


@app.command(short_help="Forget a data subject: destroy their keys, erase their personal data.")
@_reports_errors
def forget(
    subject_id: Annotated[
        str,
        typer.Argument(
            metavar="SUBJECT_ID", help="The data subject (in the bank, the account id)."
        ),
    ],
    reason: Annotated[
        str,
        typer.Option(
            help=f"Why (recorded in the erasure event; no personal data; at most"
            f" {MAX_REASON_LENGTH} characters)."
        ),
    ],
    stream: Annotated[
        str | None,
        typer.Option(
            metavar="AGGREGATE_ID",
            help="The stream to record the erasure in (default: the one named SUBJECT_ID).",
        ),
    ] = None,
    actor: Annotated[
        str, typer.Option(help="Who forgets (recorded in the erasure event's metadata).")
    ] = "cli",
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    as_json: JsonFlag = False,
) -> None:
    r"""Destroy every key of SUBJECT_ID, so their personal data reads as \[erased] in every copy
    of the events (the store, its backups, the bus); append PersonalDataErased (the erased
    fields and the reason) to their stream, which projections handle by dropping those fields;
    delete the stream's snapshots. Running it again repairs an interrupted run and changes
    nothing else. Storing personal data for the subject again needs an explicit decision in
    code (SubjectKeys.allow_again)."""
    check_forget_arguments(subject_id, reason, stream)  # before the store is opened (or made)
    with cronica.connect(store_url) as store:
        erasure = forget_subject(
            store, subject_id, reason=reason, stream=stream, audit=Audit(actor=actor)
        )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "subjectId": erasure.subject_id,
                    "keysDestroyed": erasure.keys_destroyed,
                    "stream": erasure.stream,
                    "fields": list(erasure.fields),
                    "position": erasure.position,
                }
            )
        )
        return
    typer.echo(f"{subject_id}: {erasure.keys_destroyed} key(s) destroyed")
    if erasure.position is None:
        typer.echo(f"no stream {erasure.stream!r}: no erasure event recorded")
    else:
        fields = ", ".join(erasure.fields) or "none"
        typer.echo(
            f"PersonalDataErased at position {erasure.position} in {erasure.stream}"
            f" (fields: {fields})"
        )
