"""Cost of storing hidden states during the cut sweep, and their size.

    python benchmarks/latent_cost.py [--model smollm2-135m-instruct] [--lengths 256,1024] [--layers default]
                                     [--repeats 3]

For CoTs of each length (the truncate_cost text cut to that many tokens), times the 11-cut sweep
as cotprobe runs it (`cuts.probe_cuts`) without and with hidden states at the given layers
(taken from the pass that encodes the trace), the best of --repeats runs each, alternating, and
prints the ratio (target <= 1.1) and the bytes stored per 1,000 cuts (float16, layers x hidden).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from truncate_cost import PARAGRAPH, make_trace  # noqa: E402

from cotprobe.backends import fork, load_backend  # noqa: E402
from cotprobe.hidden import DTYPE, model_layers, parse_layers  # noqa: E402
from cotprobe.forcing import ForceSettings, Prober  # noqa: E402
from cotprobe.profiles import get_profile  # noqa: E402
from cotprobe.scales import VERBAL_10  # noqa: E402
from cotprobe.cuts import parse_fractions, plan_cuts, probe_cuts  # noqa: E402
from cotprobe.steps import segment_trace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--lengths", default="256,1024")
    parser.add_argument("--layers", default="default")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    backend = load_backend(args.model)
    n_layers, hidden = model_layers(backend)
    layers = parse_layers(args.layers, n_layers)
    profile, force = get_profile("plain"), ForceSettings()
    fork(backend, backend.encode(PARAGRAPH), [8])  # warm-up
    per_1000 = 1000 * len(layers) * hidden * DTYPE.itemsize
    print(f"model {args.model}; 11 cuts at step boundaries; layers {layers} of {n_layers}, hidden size {hidden}")
    print(f"stored per 1,000 cuts: {per_1000:,} bytes ({per_1000 / 2**20:.1f} MiB; float16)")
    print(f"{'tokens':>6} {'sweep s':>8} {'+hidden s':>9} {'ratio':>6}")
    for n in (int(x) for x in args.lengths.split(",")):
        trace, question = make_trace(backend, n)
        cuts = plan_cuts(segment_trace(backend, trace), n, parse_fractions("0:1:0.1"), "step")
        plain, with_hidden = [], []
        for _ in range(args.repeats):
            for times, extra in ((plain, {}), (with_hidden, {"hidden_layers": layers, "states": {}})):
                start = time.perf_counter()
                probe_cuts(Prober(backend, profile, VERBAL_10, force), trace, question, cuts, **extra)
                times.append(time.perf_counter() - start)
        print(f"{n:>6} {min(plain):8.2f} {min(with_hidden):9.2f} {min(with_hidden) / min(plain):6.2f}")


if __name__ == "__main__":
    main()
