"""DVC stage: test-pair relation embeddings of the trained head -> faiss index, ids table, metrics/search.json."""

from pipeline.params import load_params
from pipeline.search import run_search_index_stage
from pipeline.user_errors import one_line_errors


@one_line_errors
def main() -> None:
    params = load_params()
    metrics = run_search_index_stage(params)
    k = params.search.precision_k
    print(f"{params.search.out_dir}: {metrics['vectors']} pairs ({metrics['index']}), "
          f"mean precision@{k} {metrics[f'mean_precision@{k}']} (random ranking {metrics['mean_base_rate']})")  # fmt: skip


if __name__ == "__main__":
    main()
