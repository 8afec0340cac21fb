"""The drift figure for a known shift, computed in process with the server's own code.

    python -m bench.drift_shift

profile_of, bin_counts, psi and SharedCounts, as the server uses them: iris training rows
drawn with replacement (in-distribution traffic), petal length moved by 0, 0.1, 0.25, 1 and 3
training standard deviations, counted in flushes of 30 rows into windows of 1,000 and 10,000.
"""

import tempfile
from pathlib import Path

import numpy as np

from serving.dataplane.drift_window import SharedCounts
from serving.repository.profile import bin_counts, profile_of, psi
from training.data import load_dataset


def drift_table(scratch: Path) -> str:
    """PSI per window and shift, through the server's own binning and shared window."""
    data = load_dataset("iris")
    profile = profile_of(data.x_train)
    width = max(feature.bins for feature in profile)
    names = data.feature_names
    shifted = names.index("petal_length_cm")
    lines = [
        "| window (rows) | shift of petal_length_cm | its PSI | largest PSI of the other 3 |",
        "|---:|---:|---:|---:|",
    ]
    rng = np.random.default_rng(0)
    for window in (1_000, 10_000):
        for shift_sd in (0.0, 0.1, 0.25, 1.0, 3.0):
            rows = data.x_train[rng.integers(0, len(data.x_train), window * 3)].copy()
            rows[:, shifted] += shift_sd * data.x_train[:, shifted].std()
            header = {"window": {"rows": window, "seconds": 0.0}, "shift": shift_sd}
            counts_file = SharedCounts(scratch / f"psi-{window}-{shift_sd}", header, 4, width)
            for chunk in np.array_split(rows, 300):  # as flushes of ~10 requests would
                counts_file.add(bin_counts(chunk, profile, width), len(chunk), now=0.0)
            counts, _ = counts_file.read(now=0.0)
            counts_file.close()
            values = [psi(counts[i], feature) for i, feature in enumerate(profile)]
            others = max(v for i, v in enumerate(values) if i != shifted)
            lines.append(f"| {window:,} | {shift_sd:g} sd | {values[shifted]:.3f} | {others:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        print(drift_table(Path(scratch)))
