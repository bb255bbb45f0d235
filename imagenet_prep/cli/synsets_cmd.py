"""`imagenet-prep synsets show|search|tree|leaves` and `imagenet-prep wordnet status|install`.

The library is imported inside each command: `--help` stays fast, and lookups that the bundled 1K data
answers (e.g. `synsets show n01440764`) never import nltk.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .output import Output

if TYPE_CHECKING:  # pragma: no cover
    from ..taxonomy.synsets import Synset, SynsetTree

synsets_app = typer.Typer(
    name="synsets",
    help=(
        "Look up WordNet 3.0 synsets and the ImageNet-1K classes under them.\n\n"
        "Example: imagenet-prep synsets leaves dog.n.01 --json"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)
wordnet_app = typer.Typer(
    name="wordnet",
    help=(
        "Check or set up WordNet 3.0 (needed by synset queries beyond the bundled 1K metadata).\n\n"
        "Example: imagenet-prep wordnet install --from /usr/share/wordnet"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)

QUERY_HELP = 'A wnid (n02084071), a WordNet sense (dog.n.01) or a name (dog, "tabby cat").'
WordNetDir = Annotated[
    Path | None,
    typer.Option(
        "--wordnet",
        metavar="DIR",
        help="WordNet 3.0 dict folder, e.g. /usr/share/wordnet (default: $IMAGENET_PREP_WORDNET or found).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _use(wordnet_dir: Path | None) -> None:
    from ..taxonomy import synsets

    if wordnet_dir is not None:
        synsets.use_wordnet(wordnet_dir)


def _tag(synset: Synset) -> str:
    info = synset.class_info
    return f"[1K {info.index}: {info.name}]" if info else ""


def _print_synset(record: dict[str, Any]) -> None:
    typer.echo(f"{record['wnid']}  {record['name']}")
    typer.echo(f"  lemmas:      {', '.join(lemma.replace('_', ' ') for lemma in record['lemmas'])}")
    typer.echo(f"  definition:  {record['definition']}")
    if record["is_imagenet1k"]:
        typer.echo(
            f"  ImageNet-1K: index {record['imagenet1k_index']} (tf_index {record['imagenet1k_index'] + 1}),"
            f' ILSVRC2012_ID {record["ilsvrc2012_id"]}, name "{record["display_name"]}"'
        )
    else:
        typer.echo(
            f"  ImageNet-1K: not a class; {record['imagenet1k_leaves']} classes below"
            + (f" (imagenet-prep synsets leaves {record['name']})" if record["imagenet1k_leaves"] else "")
        )


@synsets_app.command("show")
def show_command(
    queries: Annotated[list[str], typer.Argument(metavar="QUERY", help=QUERY_HELP)],
    as_json: JsonFlag = False,
    wordnet_dir: WordNetDir = None,
) -> None:
    """Show synsets: wnid, sense name, lemmas, definition, ImageNet-1K indices.

    An ambiguous name (crane) lists all its noun senses. Examples:

      imagenet-prep synsets show n01440764

      imagenet-prep synsets show crane --json
    """
    from ..taxonomy import synsets

    _use(wordnet_dir)
    records: list[dict[str, Any]] = []
    for query in queries:
        try:
            found: tuple[Synset, ...] = (synsets.get(query),)
            note = ""
        except synsets.AmbiguousQueryError as exc:
            found = exc.senses
            one_k = sum(s.is_imagenet1k for s in found)
            note = (
                f"'{query}' is ambiguous: {len(found)} noun senses ({one_k} ImageNet-1K classes); "
                "give a wnid or a sense name to pick one."
            )
        batch = [s.to_dict(query) for s in found]
        records += batch
        if not as_json:
            if note:
                typer.echo(note)
            for record in batch:
                _print_synset(record)
    Output(as_json).result(records)  # the text was printed query by query, above


@synsets_app.command("search")
def search_command(
    text: Annotated[str, typer.Argument(help="Part of a name, case-insensitive (terrier, 'sea lion').")],
    all_wordnet: Annotated[
        bool, typer.Option("--all-wordnet", help="Also search every WordNet noun (loads WordNet).")
    ] = False,
    limit: Annotated[int, typer.Option(min=0, help="Show at most N results (0: all).")] = 50,
    as_json: JsonFlag = False,
    wordnet_dir: WordNetDir = None,
) -> None:
    """Find synsets by name: the 1000 ImageNet-1K classes first, then (--all-wordnet) any WordNet noun.

    Examples:

      imagenet-prep synsets search terrier

      imagenet-prep synsets search "sea lion" --all-wordnet --json
    """
    from ..taxonomy import synsets

    _use(wordnet_dir)
    found = synsets.search(text, all_wordnet=all_wordnet, limit=limit + 1 if limit else None)
    more = bool(limit) and len(found) > limit
    shown = found[:limit] if limit else found
    width = max((len(s.name) for s in shown), default=0)
    Output(as_json).result(
        [s.to_dict(text) for s in shown] if as_json else [],
        [f"{s.wnid}  {s.name:<{width}}  {_tag(s) or '-'}  {s.definition}" for s in shown],
    )
    if not shown:
        hint = "" if all_wordnet else " among the ImageNet-1K classes (add --all-wordnet to search all nouns)"
        typer.echo(f"No synsets match '{text}'{hint}.", err=True)
    elif more:
        typer.echo(f"(first {limit} results; --limit 0 shows all)", err=True)


def _print_tree(node: SynsetTree, prefix: str = "", last: bool = True, root: bool = True) -> None:
    label = f"{node.synset.name}  {node.synset.wnid}  " + (
        _tag(node.synset) or f"({node.imagenet_leaves} ImageNet-1K classes)"
    )
    typer.echo(label if root else f"{prefix}{'└── ' if last else '├── '}{label}")
    inner = "" if root else prefix + ("    " if last else "│   ")
    for i, child in enumerate(node.children):
        _print_tree(child, inner, i == len(node.children) - 1, root=False)


@synsets_app.command("tree")
def tree_command(
    query: Annotated[str, typer.Argument(metavar="QUERY", help=QUERY_HELP)],
    depth: Annotated[
        int | None,
        typer.Option(min=0, help="Levels below QUERY to show (default: all; 0: only the paths up)."),
    ] = None,
    as_json: JsonFlag = False,
    wordnet_dir: WordNetDir = None,
) -> None:
    """Show where a synset sits: its is-a path(s) up to entity.n.01, then the ImageNet-1K part of the
    hierarchy below it (only branches that lead to 1K classes; each node shows its 1K class count).

    Examples:

      imagenet-prep synsets tree tabby --depth 0

      imagenet-prep synsets tree dog.n.01 --depth 2
    """
    from ..taxonomy import synsets

    _use(wordnet_dir)
    paths = synsets.hypernym_paths(query)
    below = synsets.tree(query, depth=depth)
    if as_json:
        Output(as_json).result({"paths": [[s.name for s in path] for path in paths], "tree": below})
        return
    for path in paths:
        typer.echo(" > ".join(s.name for s in path))
    typer.echo("")
    _print_tree(below)


@synsets_app.command("leaves")
def leaves_command(
    queries: Annotated[list[str], typer.Argument(metavar="QUERY", help=QUERY_HELP)],
    long: Annotated[bool, typer.Option("--long", "-l", help="Also print class index and name.")] = False,
    as_json: JsonFlag = False,
    wordnet_dir: WordNetDir = None,
) -> None:
    """Print the ImageNet-1K classes at or under synsets (sorted wnids, one per line; several QUERYs: union).

    A wnid or sense name (dog.n.01) of a synset with 1K classes below is answered from bundled data in
    well under a second; other queries load WordNet. Examples:

      imagenet-prep synsets leaves dog.n.01 --json

      imagenet-prep synsets leaves bird.n.01 cat.n.01 --long
    """
    from ..taxonomy import classes, synsets

    _use(wordnet_dir)
    wnids = sorted({wnid for query in queries for wnid in synsets.imagenet_leaves(query)})
    Output(as_json).result(
        wnids,
        (
            f"{wnid}\t{classes.by_wnid(wnid).index}\t{classes.by_wnid(wnid).name}" if long else wnid
            for wnid in wnids
        ),
        indent=None,
    )
    if not wnids:
        typer.echo(f"No ImageNet-1K classes under {', '.join(queries)}.", err=True)


@wordnet_app.command("status")
def status_command(
    wordnet_dir: WordNetDir = None,
    load: Annotated[bool, typer.Option("--load", help="Also load it with nltk (a few seconds).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Say where WordNet 3.0 would be loaded from; exit 0 when usable, 2 with how to install it when not.

    Example: imagenet-prep wordnet status --wordnet /usr/share/wordnet
    """
    from ..errors import WordNetError
    from ..taxonomy import wordnet

    state = wordnet.status(wordnet_dir)
    if not state.ok:
        raise WordNetError(state.message)
    output = Output(as_json)
    output.result(state, state.message)
    if load:
        reader = wordnet.load(wordnet_dir)
        output.echo(
            f"Loaded: WordNet {reader.get_version()}, dog.n.01 = n{reader.synset('dog.n.01').offset():08d}"
        )


@wordnet_app.command("install")
def install_command(
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from",
            metavar="DIR",
            help="WordNet 3.0 dict folder (Debian: /usr/share/wordnet); default: a system one or download.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Prepare WordNet 3.0 in the tool's cache (from a dict folder, offline) or download it with nltk.

    Examples:

      imagenet-prep wordnet install --from /usr/share/wordnet

      imagenet-prep wordnet install
    """
    from ..taxonomy import wordnet

    location = wordnet.install(from_dir)
    Output(as_json).result(
        location, f"WordNet {location.version} ready in {location.nltk_root} (from {location.origin})."
    )


def register(app: typer.Typer) -> None:
    """Add the `synsets` and `wordnet` command groups to the root app."""
    app.add_typer(synsets_app, name="synsets")
    app.add_typer(wordnet_app, name="wordnet")
