"""Two runs with the same seed give byte-identical dataset and index files."""

from pipeline.ag.reader import build_index, write_index
from pipeline.ag.synth import write_synthetic_ag
from pipeline.params import SynthParams


def test_index_files_are_byte_identical_across_runs(tmp_path):
    params = SynthParams(videos=16, seed=11, max_frames=6)
    outputs = []
    for run in ("a", "b"):
        root = tmp_path / run / "ag"
        write_synthetic_ag(root, params, progress=False)
        write_index(build_index(root, 0.25, 4, 16.0), tmp_path / run / "index")
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / run / "index").iterdir())})
    assert outputs[0].keys() == {"frames.parquet", "objects.parquet", "relations.parquet", "summary.json"}
    assert outputs[0] == outputs[1]
