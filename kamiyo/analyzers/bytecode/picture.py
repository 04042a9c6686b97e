"""A picture of the largest fork families, for people who would rather look than read (`--export png=FILE`).

One panel per family: nodes are exact-clone classes sized by member count, solid edges are clones, dashed edges
forks, dotted edges delegations. matplotlib is imported here only, so the engine does not depend on it.
"""

from __future__ import annotations

import io
import math
from collections import Counter

import networkx as nx

from ...errors import InputError

RELATION_STYLE = {"clone": "solid", "fork": "dashed", "delegates": "dotted"}
KIND_COLOUR = {"contract": "#3b6ea8", "library": "#7a5195", "proxy": "#ef5675", "eip1167": "#ffa600",
               "eip7702": "#ff764a", "empty": "#999999"}


SMALL_FAMILY = 12


def _short(label: str) -> str:
    """chain:0xabcdef…: enough of a label to tell nodes apart in a picture."""
    head, _, address = str(label).rpartition(":")
    short = address[:10] + "…" if address.startswith("0x") and len(address) > 12 else address
    return f"{head}\n{short}" if head else short


def render_png(graph: nx.Graph, top: int = 9) -> bytes:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise InputError("the png format needs matplotlib: pip install 'kamiyo[dev]'") from exc

    members = Counter()
    for _, data in graph.nodes(data=True):
        members[data["family"]] += len(data["members"])
    families = [f for f, _ in sorted(members.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    cols = max(1, math.ceil(math.sqrt(len(families))))
    rows = max(1, math.ceil(len(families) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, family in zip(axes.flat, families):
        sub = graph.subgraph([n for n, d in graph.nodes(data=True) if d["family"] == family])
        pos = nx.spring_layout(sub, seed=7, k=1.5 / math.sqrt(max(len(sub), 1)))
        small = len(sub) <= SMALL_FAMILY  # a small family is drawn to be read: stronger edges, named nodes
        for relation, style in RELATION_STYLE.items():
            edges = [(a, b) for a, b, d in sub.edges(data=True) if d["relation"] == relation]
            nx.draw_networkx_edges(sub, pos, edgelist=edges, style=style, width=1.2 if small else 0.4,
                                   alpha=0.7 if small else 0.25, ax=ax)
        if small:
            nx.draw_networkx_labels(sub, pos, ax=ax, font_size=7,
                                    labels={n: _short(sub.nodes[n].get("label", n)) for n in sub})
        nx.draw_networkx_nodes(
            sub, pos, ax=ax, linewidths=0,
            node_size=[20 + 30 * math.sqrt(len(sub.nodes[n]["members"])) for n in sub],
            node_color=[KIND_COLOUR.get(sub.nodes[n]["kind"], "#333333") for n in sub],
        )
        kinds = Counter(sub.nodes[n]["kind"] for n in sub)
        ax.set_title(f"family {family[:10]}…\n{members[family]} contracts, {len(sub)} classes "
                     f"({', '.join(f'{k} {v}' for k, v in kinds.most_common(2))})", fontsize=10)
    fig.suptitle("Largest fork families — node size: contracts in the class; solid: clone, dashed: fork", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
