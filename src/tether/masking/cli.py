"""``tether mask``: commands of the masking pipeline."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tether.masking.errors import MaskingError

app = typer.Typer(no_args_is_help=True, help="Mask analytics exports by a PII rubric.")
keys_app = typer.Typer(no_args_is_help=True, help="Create, rotate and prune masking salts.")
app.add_typer(keys_app, name="keys")
out = Console()
err = Console(stderr=True)

RubricOpt = Annotated[Path, typer.Option("--rubric", "-r", help="The rubric YAML file.")]
KeysOpt = Annotated[
    str,
    typer.Option(
        "--keys",
        "-k",
        envvar="TETHER_MASK_KEYS_SPEC",
        help="Key ring: file:PATH, env:VARIABLE or pkcs11:...; never inside a repo.",
    ),
]
DomainOpt = Annotated[
    str, typer.Option("--domain", "-d", help="Token namespace, e.g. tool-telemetry. Required.")
]
EngineOpt = Annotated[str, typer.Option("--engine", "-e", help="polars (default) or spark.")]
MasterOpt = Annotated[
    str, typer.Option("--spark-master", help="Spark master: local[N] or a cluster URL.")
]


def _engine(name: str, master: str) -> Any:
    from tether.masking.engines import make_engine

    return make_engine(name, master=master) if name == "spark" else make_engine(name)


def _request(
    source: str,
    rubric: Path,
    keys: str,
    domain: str,
    out_dir: Path,
    engine: str,
    master: str,
    log: Path | None,
    salt_version: str | None,
) -> Any:
    from tether.masking.job import MaskRequest
    from tether.masking.keystore import open_keyring
    from tether.masking.progress import RichReporter
    from tether.masking.rubric import load_rubric
    from tether.masking.sources import open_source

    return MaskRequest(
        source=open_source(source),
        rubric=load_rubric(rubric),
        keys=open_keyring(keys),
        domain=domain,
        out=out_dir,
        engine=_engine(engine, master),
        log_path=log,
        salt_version=salt_version,
        reporter=RichReporter(err),
    )


def _summary(record: dict[str, Any]) -> None:
    out.print(f"[bold green]masked[/] {record['rows']} rows -> {record['output']}")
    out.print(
        f"run {record['run_id']}, rubric {record['rubric']['name']}@v"
        f"{record['rubric']['version']}, salt {record['salt_version']}, "
        f"domain {record['domain']}"
    )
    for column, kinds in record["free_text_entities"].items():
        found = ", ".join(f"{k}={n}" for k, n in kinds.items())
        out.print(f"redacted in {column}: {found}")


@app.command()
def run(
    source: Annotated[str, typer.Argument(help="CSV or Parquet file, or KIND:LOCATION.")],
    rubric: RubricOpt,
    keys: KeysOpt,
    domain: DomainOpt,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="New output directory.")],
    engine: EngineOpt = "polars",
    spark_master: MasterOpt = "local[*]",
    log: Annotated[Path | None, typer.Option(help="Decision log (default: next to --out).")] = None,
    salt_version: Annotated[
        str | None,
        typer.Option(
            help="Use this salt instead of the current one (only inside its 30-day overlap)."
        ),
    ] = None,
    mapping_out: Annotated[
        Path | None,
        typer.Option(help="Also write the encrypted token mapping table here (outside --out)."),
    ] = None,
) -> None:
    """Mask SOURCE by the rubric into a new directory of Parquet files plus audit evidence."""
    from tether.masking.job import run_mask
    from tether.masking.mapping import write_mapping

    req = _request(source, rubric, keys, domain, out_dir, engine, spark_master, log, salt_version)
    record = run_mask(req)
    _summary(record)
    if mapping_out is not None:
        n = write_mapping(mapping_out, req.source, req.rubric, req.keys, domain, out_dir)
        out.print(f"mapping table: {n} entries -> {mapping_out}")


@app.command()
def verify(
    path: Annotated[Path, typer.Argument(help="Masked output directory, Parquet or CSV file.")],
    rubric: RubricOpt,
    domain: Annotated[
        str | None,
        typer.Option("--domain", "-d", help="Expected domain (default: the output's manifest)."),
    ] = None,
    raw_sample: Annotated[
        str | None,
        typer.Option(help="A sample of the raw data: no digest or token may equal a raw value."),
    ] = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            help="A masked dataset of another domain that must share no token (repeatable)."
        ),
    ] = None,
    ner_sample: Annotated[int, typer.Option(help="Distinct free-text values to re-check.")] = 200,
) -> None:
    """Check a masked dataset against the rubric's invariants; exit 1 on any violation."""
    from tether.masking.rubric import load_rubric
    from tether.masking.sources import open_source
    from tether.masking.verify import VerifyOptions
    from tether.masking.verify import verify as run_verify

    opts = VerifyOptions(
        rubric=load_rubric(rubric),
        domain=domain,
        raw_sample=open_source(raw_sample) if raw_sample else None,
        against=tuple(against or ()),
        ner_sample=ner_sample,
    )
    violations = run_verify(path, opts)
    if not violations:
        out.print(f"[bold green]ok[/] {path} honours {opts.rubric.label}")
        return
    out.print(f"[bold red]{len(violations)} violation(s)[/] in {path} against {opts.rubric.label}:")
    for v in violations:
        out.print(f"  - {v}", markup=False, highlight=False)
    raise typer.Exit(1)


@app.command()
def remask(
    old: Annotated[Path, typer.Argument(help="A masked output directory to re-mask.")],
    rubric: RubricOpt,
    keys: KeysOpt,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="New output directory.")],
    domain: Annotated[
        str | None,
        typer.Option("--domain", "-d", help="Token namespace (default: the old output's)."),
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="The raw data, when a masked column must change treatment.")
    ] = None,
    engine: EngineOpt = "polars",
    spark_master: MasterOpt = "local[*]",
    log: Annotated[Path | None, typer.Option(help="Decision log (default: next to --out).")] = None,
) -> None:
    """Re-mask an output under a newer rubric version (runbook: docs/runbooks/remask.md)."""
    from tether.masking.evidence import read_manifest
    from tether.masking.remask import remask as run_remask
    from tether.masking.sources import open_source

    manifest = read_manifest(old) or {}
    dom = domain or str(manifest.get("domain", ""))
    req = _request(str(old / "data"), rubric, keys, dom, out_dir, engine, spark_master, log, None)
    record = run_remask(old, req, open_source(source) if source else None)
    _summary(record)
    out.print(f"supersedes run {record['supersedes']}; verify the new output, then retire {old}")


@app.command()
def kept(rubric: RubricOpt) -> None:
    """Print kept_columns.md for a rubric (what is kept, and why)."""
    from tether.masking.evidence import render_kept_columns
    from tether.masking.rubric import load_rubric

    r = load_rubric(rubric)
    out.print(render_kept_columns(r, r.name, list(r.columns)), markup=False, highlight=False)


@app.command()
def explain(
    path: Annotated[Path, typer.Argument(help="Masked output directory.")],
    row: Annotated[int, typer.Argument(help="Row number (0-based).")],
    log: Annotated[Path | None, typer.Option(help="Decision log (default: next to PATH).")] = None,
) -> None:
    """Show exactly what was done to one row: its run, rubric, and each column's treatment."""
    import polars as pl

    from tether.masking.decisions import DecisionLog
    from tether.masking.job import LOG_NAME
    from tether.masking.plan import REDACTIONS_COL, RUN_COL

    frame = pl.scan_parquet(str(path / "data" / "*.parquet")).slice(row, 1).collect()
    if frame.height == 0:
        raise MaskingError(f"{path} has no row {row}")
    run_id = frame[RUN_COL][0]
    record = DecisionLog(log or path.parent / LOG_NAME).find_run(run_id)
    if record is None:
        raise MaskingError(f"run {run_id} is not in the decision log; pass --log")
    doc = {
        "row": row,
        "run_id": run_id,
        "rubric": record["rubric"],
        "salt_version": record["salt_version"],
        "domain": record["domain"],
        "redactions": frame[REDACTIONS_COL][0],
        "columns": record["columns"],
    }
    out.print_json(json.dumps(doc))


@app.command("log-check")
def log_check(log: Annotated[Path, typer.Argument(help="A decision log file.")]) -> None:
    """Check the decision log's hash chain; exit 1 if a line was changed or removed."""
    from tether.masking.decisions import DecisionLog

    problems = DecisionLog(log).check()
    for p in problems:
        out.print(f"  - {p}")
    if problems:
        raise typer.Exit(1)
    out.print(f"[bold green]ok[/] {log}: chain intact")


@app.command()
def synth(
    out_path: Annotated[Path, typer.Option("--out", "-o", help="A .csv or .parquet file.")],
    rows: Annotated[int, typer.Option(help="How many rows.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Generate synthetic tool telemetry with a realistic PII surface."""
    from tether.masking.synth import generate, write

    with err.status(f"generating {rows} rows"):
        write(generate(rows, seed), out_path)
    out.print(f"wrote {rows} rows -> {out_path}; rubric: `tether mask example-rubric`")


@app.command("example-rubric")
def example_rubric(
    name: Annotated[
        str, typer.Option(help="tool-telemetry (synth data) or power-tool-store (the store).")
    ] = "tool-telemetry",
) -> None:
    """Print a shipped rubric, to start your own from."""
    shipped = resources.files("tether.masking").joinpath(f"rubrics/{name}.yaml")
    if not shipped.is_file():
        raise MaskingError(f"no shipped rubric {name!r}; use tool-telemetry or power-tool-store")
    text = shipped.read_text()
    typer.echo(text, nl=False)


@app.command()
def lookup(
    token: Annotated[str, typer.Argument(help="A quasi-identifier token.")],
    mapping: Annotated[Path, typer.Option(help="The encrypted mapping table.")],
    keys: KeysOpt,
    domain: DomainOpt,
) -> None:
    """For the privacy officer: the value behind a token, from the mapping table."""
    from tether.masking.keystore import open_keyring
    from tether.masking.mapping import lookup as run_lookup

    found = run_lookup(mapping, open_keyring(keys), domain, token)
    if not found:
        raise MaskingError(f"token {token} is not in {mapping}")
    for column, value in found:
        out.print(f"{column}: {value}", markup=False, highlight=False)


def _day(text: str | None) -> date:
    return datetime.now(UTC).date() if text is None else date.fromisoformat(text)


@keys_app.command("init")
def keys_init(
    path: Annotated[Path, typer.Argument(help="New key file (outside any repository).")],
    version: Annotated[str, typer.Option(help="First salt's version, e.g. 2026q2.")],
    valid_from: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default today).")] = None,
) -> None:
    """Create a key file with one salt, a token key and a mapping key (mode 600)."""
    from tether.masking.keystore import check_key_file, new_keyring, write_key_file

    if path.exists():
        raise MaskingError(f"{path} exists; use `tether mask keys rotate` to add a salt")
    write_key_file(path, new_keyring(version, _day(valid_from)))
    check_key_file(path)
    out.print(f"created {path} with salt {version}")


@keys_app.command("rotate")
def keys_rotate(
    path: Annotated[Path, typer.Argument(help="The key file.")],
    version: Annotated[str, typer.Option(help="New salt's version, e.g. 2026q3.")],
    valid_from: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default today).")] = None,
) -> None:
    """Close the current salt and start a new one; the old one stays usable for 30 days."""
    from tether.masking.keystore import open_keyring, rotate, write_key_file

    ring = rotate(open_keyring(f"file:{path}"), version, _day(valid_from))
    write_key_file(path, ring)
    out.print(f"rotated: salt {version} from {_day(valid_from)}")


@keys_app.command("prune")
def keys_prune(path: Annotated[Path, typer.Argument(help="The key file.")]) -> None:
    """Destroy salts whose 30-day overlap is over."""
    from tether.masking.keystore import open_keyring, prune, write_key_file

    ring, gone = prune(open_keyring(f"file:{path}"), _day(None))
    write_key_file(path, ring)
    out.print(f"destroyed: {', '.join(gone) or 'nothing'}")


@keys_app.command("show")
def keys_show(keys: KeysOpt) -> None:
    """List salt versions and their windows (never the secrets)."""
    from tether.masking.keystore import open_keyring

    ring = open_keyring(keys)
    out.print_json(json.dumps([s.public() for s in ring.salts]))
