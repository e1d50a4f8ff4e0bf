"""Link detections of one class into tracks across a video's frames.

AG ground truth has one instance per class per frame, so its track is just
(video, class). Detections can hold several boxes of a class, so they are
linked greedily by IoU: frame by frame, each detection joins the track of
the same class whose last box overlaps it most, highest IoU first, each
track taking at most one detection per frame; detections left over start
new tracks. A track stays open for the rest of the video, so an object the
detector misses for a few frames keeps its identity when it comes back.

The loop runs over frame *positions* (the k-th frame of every video at
once), not over videos or detections: each step is a handful of joins over
all videos of the chunk. Greedy matching in descending IoU order equals
repeatedly accepting every candidate that is the best for both its
detection and its track, which is what :func:`_greedy_match` does in whole-
table rounds.
"""

from __future__ import annotations

import polars as pl

from pipeline.motion.attributes import box_iou

BOX = ("x1", "y1", "x2", "y2")
TRACK_BOX = ("tx1", "ty1", "tx2", "ty2")


def _greedy_match(candidates: pl.DataFrame) -> pl.DataFrame:
    """One-to-one matching of (row, track, iou) candidates, greedy by descending IoU.

    Ties are broken by the smaller row, then the smaller track, so the result
    does not depend on the input order.
    """
    matched: list[pl.DataFrame] = []
    remaining = candidates.select("row", "track", "iou")
    while remaining.height:
        best_for_row = remaining.sort(["iou", "track"], descending=[True, False]).unique(
            "row", keep="first", maintain_order=True
        )
        best_for_track = remaining.sort(["iou", "row"], descending=[True, False]).unique(
            "track", keep="first", maintain_order=True
        )
        mutual = best_for_row.join(best_for_track.select("row", "track"), on=["row", "track"])
        matched.append(mutual.select("row", "track"))
        remaining = remaining.filter(
            ~pl.col("row").is_in(mutual["row"].implode())
            & ~pl.col("track").is_in(mutual["track"].implode())
        )
    if not matched:
        return pl.DataFrame(schema={"row": pl.UInt32, "track": pl.Int64})
    return pl.concat(matched)


def link_tracks(objects: pl.DataFrame, iou_threshold: float) -> pl.DataFrame:
    """Add ``track_id`` (int32) to per-frame object detections.

    ``objects`` needs video, frame_number, det_index, label and x1..y2, with
    (video, frame_number, det_index) unique. A detection joins a track when
    its IoU with the track's last box is at least ``iou_threshold``.
    Track ids count from 0 within each video in order of first appearance
    (frame number, then det_index), so they do not depend on chunking.
    """
    df = objects.sort(["video", "frame_number", "det_index"]).with_columns(
        row=pl.int_range(pl.len(), dtype=pl.UInt32),
        position=pl.col("frame_number").rank("dense").over("video").cast(pl.Int32),
    )
    track_of_row: list[pl.DataFrame] = []
    open_tracks = pl.DataFrame(
        schema={"video": pl.String, "label": df.schema["label"], "track": pl.Int64}
        | {name: pl.Float64 for name in TRACK_BOX}
    )
    next_track = 0
    for _, step in sorted(df.partition_by("position", as_dict=True, include_key=False).items()):
        candidates = (
            step.select("row", "video", "label", *BOX)
            .join(open_tracks, on=["video", "label"])
            .with_columns(iou=box_iou(BOX, TRACK_BOX))
            .filter(pl.col("iou") >= iou_threshold)
        )
        matches = _greedy_match(candidates)
        assigned = step.join(matches, on="row", how="left").sort("row")
        unmatched = pl.col("track").is_null()
        assigned = assigned.with_columns(
            track=pl.when(unmatched)
            .then(next_track + unmatched.cast(pl.Int64).cum_sum() - 1)
            .otherwise(pl.col("track"))
        )
        next_track += step.height - matches.height
        track_of_row.append(assigned.select("row", "track"))
        open_tracks = pl.concat(
            [
                open_tracks.filter(~pl.col("track").is_in(matches["track"].implode())),
                assigned.select(
                    "video",
                    "label",
                    "track",
                    *(pl.col(a).alias(t) for a, t in zip(BOX, TRACK_BOX, strict=True)),
                ),
            ]
        )
    if not track_of_row:
        return objects.clear().with_columns(track_id=pl.lit(None, dtype=pl.Int32))
    df = df.join(pl.concat(track_of_row), on="row").sort("row")
    # Renumber per video by first appearance: rows are already in (video, frame, det_index) order.
    first_rows = df.unique("track", keep="first", maintain_order=True).select(
        "track", track_id=pl.int_range(pl.len(), dtype=pl.Int32).over("video")
    )
    return df.join(first_rows, on="track").sort("row").drop("row", "position", "track")
