"""Two runs with the same seed give byte-identical dataset, index and motion files."""

from pipeline.ag.reader import build_ag_index, write_index
from pipeline.ag.synth import write_synthetic_ag
from pipeline.motion import write_motion_table
from pipeline.params import MotionParams, SynthParams


def test_index_and_motion_files_are_byte_identical_across_runs(tmp_path):
    params = SynthParams(videos=16, seed=11, min_frames=3, max_frames=6)
    outputs = []
    for run in ("a", "b"):
        root = tmp_path / run / "ag"
        write_synthetic_ag(root, params, progress=False)
        write_index(build_ag_index(root, 0.25, 4, 16.0), tmp_path / run / "index")
        # No ROI cache: the motion table of the ground-truth pairs only.
        motion = MotionParams(out_path=str(tmp_path / run / "motion" / "motion.parquet"), videos_per_chunk=5)
        write_motion_table(tmp_path / run / "index", tmp_path / run / "roi", motion)
        outputs.append(
            {p.relative_to(tmp_path / run).as_posix(): p.read_bytes() for p in sorted((tmp_path / run).rglob("*.*")) if p.is_file()}
        )
    assert {"index/frames.parquet", "index/objects.parquet", "index/relations.parquet", "index/summary.json",
            "motion/motion.parquet"} <= outputs[0].keys()  # fmt: skip
    assert outputs[0].keys() == outputs[1].keys()
    for name in outputs[0]:
        assert outputs[0][name] == outputs[1][name], name
