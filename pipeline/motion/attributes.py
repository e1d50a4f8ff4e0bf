"""MFE attributes as polars expressions over a whole table of box pairs.

Input is a *pair table*: one row per (video, frame, person-object pair) with
the person box ``px1..py2``, the object box ``ox1..oy2``, the image size and a
track key ``(video, source, track_id)`` that follows one pair through the
video. The table is put in track order by one integer sort; every attribute
is then a column expression over the whole table whose shifts are masked at
track starts (measured faster than ``.over()`` windows), so the cost is a
few vectorised passes whatever the table's size.

For a pair with person centre p_t, object centre o_t, image diagonal D and
frame number f_t, with t-1 the pair's previous row (its previous frame):

* distance              d_t = |o_t - p_t| / D
* velocity              v_t = (d_t - d_{t-1}) / (f_t - f_{t-1}),  v = 0 on a track's first row
* persistence           mean IoU(person, object) over the track's last K rows (this one included)
* direction_consistency cos(p_t - p_{t-1}, o_t - o_{t-1}),  0 if either centre does not move
* dx, dy                ((o_t - p_t) - (o_{t-1} - p_{t-1})) / D / (f_t - f_{t-1}),  0 on the first row
* log_area_ratio        log(area_o / area_p)
* scale_change          (log_area_ratio_t - log_area_ratio_{t-1}) / (f_t - f_{t-1}),  0 on the first row
* subject_speed         mean of |p_s - p_{s-1}| / D / (f_s - f_{s-1}) over the track's last K steps up to
                        row t (causal: past frames only),  0 on a track's first row
* object_speed          the same for the object centre o_t

A centre counts as still between two rows when it moves less than
``still_fraction * D`` (``motion.still_fraction``); direction consistency
is 0 unless both centres move. The two speeds (ours, switch
``motion.extras.track_speed``) are the only attributes that say how fast the
person itself moves, rather than the pair relative to each other; they are
an extra, off in the default model and ablated on their own
(docs/synthetic_benchmark.md).

AG frames are sparse samples of the video, so every temporal difference is
divided by the frame-number step rather than by the row step.
"""

from __future__ import annotations

import polars as pl

from pipeline.io import DataError

BASE_ATTRIBUTES: tuple[str, ...] = ("distance", "velocity", "persistence", "direction_consistency")
# params switch name -> output columns it adds
EXTRA_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "relative_displacement": ("dx", "dy"),
    "log_area_ratio": ("log_area_ratio",),
    "scale_change": ("scale_change",),
    "track_speed": ("subject_speed", "object_speed"),
}
PAIR_KEY_COLUMNS: tuple[str, ...] = (
    "video", "frame", "frame_number", "source", "object_index", "object_class", "track_id",
)  # fmt: skip
PERSON_BOX: tuple[str, ...] = ("px1", "py1", "px2", "py2")
OBJECT_BOX: tuple[str, ...] = ("ox1", "oy1", "ox2", "oy2")

# Default of ``motion.still_fraction``: a centre displacement shorter than
# this fraction of the image diagonal is "not moving". A real threshold (about
# 1 px at 256x192) keeps box jitter and float noise from producing an
# arbitrary +-1 cosine; the earlier 1e-9 counted sub-pixel jitter as motion.
STILL_FRACTION = 0.004
# Areas are clamped before taking logs so a degenerate (zero-width) box gives
# a large finite value instead of -inf.
MIN_AREA = 1e-6


def box_area(x1: str, y1: str, x2: str, y2: str) -> pl.Expr:
    """Area of xyxy boxes; inverted boxes have area 0."""
    return (pl.col(x2) - pl.col(x1)).clip(lower_bound=0.0) * (pl.col(y2) - pl.col(y1)).clip(
        lower_bound=0.0
    )


def box_iou(a: tuple[str, ...], b: tuple[str, ...]) -> pl.Expr:
    """IoU of two xyxy boxes given as column names (continuous coordinates, no +1)."""
    inter_w = (
        pl.min_horizontal(pl.col(a[2]), pl.col(b[2]))
        - pl.max_horizontal(pl.col(a[0]), pl.col(b[0]))
    ).clip(lower_bound=0.0)
    inter_h = (
        pl.min_horizontal(pl.col(a[3]), pl.col(b[3]))
        - pl.max_horizontal(pl.col(a[1]), pl.col(b[1]))
    ).clip(lower_bound=0.0)
    inter = inter_w * inter_h
    union = box_area(*a) + box_area(*b) - inter
    return pl.when(union > 0).then(inter / union).otherwise(0.0)


def output_columns(extras: dict[str, bool]) -> list[str]:
    """Column order of the motion table for the given extras switches."""
    columns = [*PAIR_KEY_COLUMNS, *BASE_ATTRIBUTES]
    for switch, names in EXTRA_ATTRIBUTES.items():
        if extras.get(switch, False):
            columns.extend(names)
    return columns


def _arg_sort(keys: pl.DataFrame, columns: list[str]) -> pl.Series:
    """The permutation that sorts ``keys`` by the integer ``columns``, lexicographically.

    When the columns are non-negative and their ranges fit in 64 bits
    together they are packed into one UInt64 key: a one-key sort measured
    about 5x faster than polars' multi-column sort here.
    """
    if keys.height == 0:
        return pl.Series(dtype=pl.UInt32)
    lowest = min(keys.select(pl.col(columns).min()).row(0))
    highest = keys.select(pl.col(columns).max()).row(0)
    widths = [max(1, int(value).bit_length()) for value in highest]
    if lowest < 0 or sum(widths) > 64:
        return keys.select(pl.arg_sort_by(columns)).to_series()
    packed = pl.lit(0, dtype=pl.UInt64)
    for column, width in zip(columns, widths, strict=True):
        packed = packed * (1 << width) + pl.col(column).cast(pl.UInt64)
    return keys.select(packed.arg_sort()).to_series()


def _track_order(pairs: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """Integer sort keys of every row and the permutation that puts tracks in frame order.

    The video becomes its rank among the table's videos and the source an
    enum in lexical order, so the sorts compare integers: sorting the
    strings (and moving them around) costs more than all the arithmetic.
    """
    keys = pairs.select(
        _video=pl.col("video").cast(pl.Enum(pairs["video"].unique().sort())).to_physical(),
        _source=pl.col("source").cast(pl.Enum(["det", "gt"])).to_physical(),
        track_id=pl.col("track_id"),
        frame_number=pl.col("frame_number"),
        object_index=pl.col("object_index"),
    )
    return keys, _arg_sort(keys, ["_video", "_source", "track_id", "frame_number"])


def motion_attributes(
    pairs: pl.DataFrame,
    window_k: int,
    extras: dict[str, bool],
    still_fraction: float = STILL_FRACTION,
) -> pl.DataFrame:
    """Compute the MFE attributes of every row of a pair table.

    ``extras`` maps each key of :data:`EXTRA_ATTRIBUTES` to whether its
    columns are produced. Returns the key columns and attributes (float32),
    sorted by (video, frame_number, source, object_index).
    """
    keys, order = _track_order(pairs)
    # In track order a row's previous frame is the row above, unless the row starts a track.
    tracks = (
        pl.concat(
            [
                keys.select("_video", "_source"),
                pairs.select(
                    "track_id", "frame_number", "width", "height", *PERSON_BOX, *OBJECT_BOX
                ),
            ],
            how="horizontal",
        )
        .lazy()
        .with_row_index("_input_row")
        .select(pl.all().gather(order))
        .with_columns(
            _first=(pl.col("_video") != pl.col("_video").shift(1))
            | (pl.col("_source") != pl.col("_source").shift(1))
            | (pl.col("track_id") != pl.col("track_id").shift(1))
            | pl.int_range(pl.len()).eq(0),
        )
    )
    columns = output_columns(extras)
    attributes = [c for c in columns if c not in PAIR_KEY_COLUMNS]
    # The in-memory engine measured faster than the streaming one for these
    # whole-table shifts; the stage's video chunks already bound the memory.
    computed = (
        _attribute_expressions(tracks, window_k, still_fraction)
        .select("_input_row", "_duplicate", *attributes)
        .collect(engine="in-memory")
    )

    duplicates = computed.filter("_duplicate")
    if duplicates.height:
        row = pairs.row(int(duplicates["_input_row"][0]), named=True)
        raise DataError(
            f"frame {row['frame']}: track {row['track_id']} ({row['source']}) appears twice in one frame; "
            "a track may hold one box per frame (check the index or the detection linking)"
        )
    # back to input order, then to output order (a no-op gather is skipped:
    # tables built from the index already come in output order)
    by_input_row = computed.select(attributes).gather(computed["_input_row"].arg_sort())
    result = pl.concat(
        [pairs.select(PAIR_KEY_COLUMNS), by_input_row.cast(pl.Float32)], how="horizontal"
    )
    output_order = _arg_sort(keys, ["_video", "frame_number", "_source", "object_index"])
    if not output_order.equals(
        pl.Series(range(len(output_order)), dtype=output_order.dtype), check_names=False
    ):
        result = result.gather(output_order)
    return result


def _attribute_expressions(
    tracks: pl.LazyFrame, window_k: int, still_fraction: float
) -> pl.LazyFrame:
    """All attribute columns of a pair table in track order with a ``_first`` flag per track start."""

    def change(column: str) -> pl.Expr:
        # difference to the row above; meaningless on a track's first row, where _step is null
        return pl.col(column) - pl.col(column).shift(1)

    def per_step(column: str) -> pl.Expr:
        # change since the track's previous row per frame-number step; 0 on the first row
        return (change(column) / pl.col("_step")).fill_null(0.0)

    row = pl.int_range(pl.len())
    position = row - pl.when(pl.col("_first")).then(row).forward_fill()  # 0 on a track's first row
    # mean IoU over the track's last K rows: K masked shifts, no per-group windows
    window_sum = pl.sum_horizontal(
        pl.when(pl.col("_position") >= lag).then(pl.col("_iou").shift(lag)).otherwise(0.0)
        for lag in range(window_k)
    )
    person_move = (pl.col("_pdx") ** 2 + pl.col("_pdy") ** 2).sqrt()
    object_move = (pl.col("_odx") ** 2 + pl.col("_ody") ** 2).sqrt()
    still = still_fraction * pl.col("_diag")
    def causal_speed(move: pl.Expr) -> pl.Expr:
        # mean per-step speed over the track's last K steps up to this row (past frames only):
        # the row at lag L has a step when the row is at position >= L + 1 of its track
        speed = (move / pl.col("_diag") / pl.col("_step")).fill_null(0.0)
        total = pl.sum_horizontal(
            pl.when(pl.col("_position") >= lag + 1).then(speed.shift(lag)).otherwise(0.0)
            for lag in range(window_k)
        )
        return total / pl.col("_position").clip(lower_bound=1, upper_bound=window_k)

    return (
        tracks.with_columns(
            _position=position,
            _duplicate=~pl.col("_first") & (change("frame_number") == 0),
            _diag=(
                pl.col("width").cast(pl.Float64) ** 2 + pl.col("height").cast(pl.Float64) ** 2
            ).sqrt(),
            _pcx=(pl.col("px1") + pl.col("px2")) / 2,
            _pcy=(pl.col("py1") + pl.col("py2")) / 2,
            _ocx=(pl.col("ox1") + pl.col("ox2")) / 2,
            _ocy=(pl.col("oy1") + pl.col("oy2")) / 2,
            _iou=box_iou(PERSON_BOX, OBJECT_BOX),
            _log_area_ratio=(
                box_area(*OBJECT_BOX).clip(lower_bound=MIN_AREA)
                / box_area(*PERSON_BOX).clip(lower_bound=MIN_AREA)
            ).log(),
            _step=pl.when(pl.col("_first"))
            .then(None)
            .otherwise(change("frame_number").cast(pl.Float64)),
        )
        .with_columns(
            _rel_x=(pl.col("_ocx") - pl.col("_pcx")) / pl.col("_diag"),
            _rel_y=(pl.col("_ocy") - pl.col("_pcy")) / pl.col("_diag"),
            _pdx=change("_pcx"),
            _pdy=change("_pcy"),
            _odx=change("_ocx"),
            _ody=change("_ocy"),
        )
        .with_columns(distance=(pl.col("_rel_x") ** 2 + pl.col("_rel_y") ** 2).sqrt())
        .with_columns(
            velocity=per_step("distance"),
            persistence=window_sum / (pl.col("_position") + 1).clip(upper_bound=window_k),
            direction_consistency=pl.when(
                ~pl.col("_first") & (person_move > still) & (object_move > still)
            )
            .then(
                (pl.col("_pdx") * pl.col("_odx") + pl.col("_pdy") * pl.col("_ody"))
                / (person_move * object_move)
            )
            .otherwise(0.0)
            .clip(-1.0, 1.0),
            dx=per_step("_rel_x"),
            dy=per_step("_rel_y"),
            log_area_ratio=pl.col("_log_area_ratio"),
            scale_change=per_step("_log_area_ratio"),
            subject_speed=causal_speed(person_move),
            object_speed=causal_speed(object_move),
        )
    )
