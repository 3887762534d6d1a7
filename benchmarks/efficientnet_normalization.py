"""Which pixel normalisation suits the packaged EfficientNet-Lite0 weights: cosine-retrieval mAP of
frozen features among seen-class images (split 0's seen classes only; no unseen class is used).

    .venv/bin/python benchmarks/efficientnet_normalization.py animal-mnist   # or fashion-mnist

150 images per class; each image queries the others by cosine similarity of the frozen trunk's
1280-d output, once with pixels scaled to [-1, 1] and once with ImageNet's mean/std.
"""
import sys

import numpy as np
import torch

torch.set_num_threads(1)
from vsb2net.data import load_dataset  # noqa: E402
from vsb2net.data.splits import choose_unseen, subsample_per_class  # noqa: E402
from vsb2net.models import images_to_tensor  # noqa: E402
from vsb2net.models.efficientnet_lite import EfficientNetLite  # noqa: E402

ds = load_dataset(sys.argv[1] if len(sys.argv) > 1 else "animal-mnist", None)
keep = subsample_per_class(ds.labels, 150, 0)
ds = ds.subset(keep)
unseen = choose_unseen(ds.class_names, [], 2, 0)
m = np.isin(ds.labels, unseen, invert=True)
x = images_to_tensor(ds.x[m])
y = ds.labels[m]
bb = EfficientNetLite((1, 28, 28), 64)
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
def mapk(f):
    f = torch.nn.functional.normalize(f, dim=1)
    s = f @ f.T
    s.fill_diagonal_(-9)
    aps = []
    for i in range(len(f)):
        o = torch.argsort(s[i], descending=True)[:-1]
        rel = (y[o.numpy()] == y[i]).astype(float)
        c = np.cumsum(rel)
        aps.append((c / np.arange(1, len(c) + 1) * rel).sum() / rel.sum())
    return np.mean(aps)
for name, fn in (("[-1,1]", lambda t: t), ("imagenet mean/std", lambda t: (((t + 1) / 2) - mean) / std)):
    with torch.inference_mode():
        f = torch.cat([bb.trunk(fn(bb.preprocess(x[i:i + 200]))) for i in range(0, len(x), 200)])
    print(f"{name}: seen-class cosine mAP of frozen features {mapk(f):.4f} ({len(x)} images)")
