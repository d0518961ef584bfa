"""A PyTorch DataLoader-style consumer: ring frames become tensors with no
copy (DLPack), batched by the training loop. Skips cleanly without torch.

    python3 python/examples/torch_consumer.py            # runs a producer process too

An `IterableDataset` yields one tensor per frame: `torch.from_dlpack(lease)`
shares the slot's memory (read-only flag set; torch warns that it does not
support read-only tensors, so clone anything you want to modify). The tensor
is valid until the lease is released: here, when the next frame is asked
for. Anything that must outlive it is copied (each frame is copied into its
row of the batch below). A tensor kept past its lease reads zeros (frames
above 64 KiB) or its own frame (smaller frames are private copies), never
another frame.
"""

import multiprocessing as mp
import os
import sys
import tempfile
import warnings

import numpy as np

import sharray

FRAME = (64, 64)
FRAMES = 256


def produce(path):
    ring = sharray.Ring.open(path)
    with ring.producer() as producer:
        for n in range(FRAMES):
            with producer.loan(tag=n) as frame:
                frame[:] = n
    # leaving the block closes the stream: the consumer's iteration ends


def main():
    try:
        import torch
    except ImportError:
        print("torch_consumer: PyTorch is not installed (pip install torch); skipping")
        return 0

    class RingFrames(torch.utils.data.IterableDataset):
        """One zero-copy tensor per frame of a sharray ring."""

        def __init__(self, path):
            self.path = path

        def __iter__(self):
            consumer = sharray.Ring.open(self.path).consumer()
            with warnings.catch_warnings():
                # from_dlpack warns that torch has no read-only tensors.
                warnings.simplefilter("ignore", UserWarning)
                for lease in consumer:  # the previous lease ends here
                    yield lease.tag, torch.from_dlpack(lease)

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "frames.npy")
        sharray.Ring.create(path, FRAME, np.float32, slots=8)
        producer = mp.get_context("spawn").Process(target=produce, args=(path,))
        producer.start()
        batch = torch.empty((4, *FRAME), dtype=torch.float32)
        seen, total = 0, 0.0
        for tag, tensor in RingFrames(path):
            # `tensor` is the slot itself, valid until the next frame is
            # asked for: use it now (here: copy it into its batch row).
            assert float(tensor[0, 0]) == tag
            batch[seen % 4].copy_(tensor)
            seen += 1
            if seen % 4 == 0:
                total += float(batch.mean(dim=(1, 2)).sum())
        producer.join(60)
    print(f"torch_consumer: {seen} frames, sum of frame means {total:.0f}")
    return 0 if seen == FRAMES else 1


if __name__ == "__main__":
    sys.exit(main())
