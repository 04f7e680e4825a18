"""What a dedup run found, as markdown (the ``vidqa-dedup`` artifact of the dedup flow)."""

from __future__ import annotations

from vidqa.curation.dedup import DedupResult


def _clip(member: dict) -> str:
    return f"`{member['uri']}` {member['start_time_s']:.1f}-{member['end_time_s']:.1f} s"


def dedup_markdown(result: DedupResult, members_shown: int = 5) -> str:
    """Counts, then the largest groups: keeper first, each member with its similarity to it."""
    lines = [
        f"# Near-duplicates: {result.n_groups} groups, {result.n_duplicates} duplicate clips of {result.n_clips}",
        "",
        f"Encoder **{result.space.summary}**, cosine similarity >= **{result.threshold:g}**, keeper by highest "
        f"**{result.keep_by}** (then longest, then oldest). This run compared {result.compared} new clips.",
        "",
        'One clip per group: `vidqa export --where "duplicate_of is null" --out deduplicated.jsonl`.',
    ]
    if result.largest:
        lines += ["", "## Largest groups", "", "| group | clips | lowest similarity | keeper | duplicates |",
                  "|---:|---:|---:|---|---|"]
        for g in result.largest:
            keeper, *rest = g["members"]
            shown = "<br>".join(f"{_clip(m)} ({m['similarity']:.3f}, {m['reason']})" for m in rest[:members_shown])
            more = f"<br>... {len(rest) - members_shown} more" if len(rest) > members_shown else ""
            lines.append(f"| {g['group_id']} | {g['size']} | {g['min_similarity']:.3f} | {_clip(keeper)} | "
                         f"{shown}{more} |")
    else:
        lines += ["", "No duplicates at this threshold."]
    return "\n".join(lines) + "\n"
