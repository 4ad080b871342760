"""Public constants of well-known datasets: class names, colours and label-id tables.

Sources: PASCAL VOC 2012's devkit (names; the colour map is its ``labelcolormap``),
cityscapesScripts ``helpers/labels.py`` (id, trainId, name, colour per label) and
ADEChallengeData2016's ``objectInfo150`` (the 150 names in label order, as MMSegmentation's
``ADE20KDataset`` lists them).
"""

from __future__ import annotations

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
VOC_VOID = 255  # VOC's object borders and difficult regions


def voc_colormap(n: int = 256) -> tuple[tuple[int, int, int], ...]:
    """VOC's colour of ids ``0..n-1``: the bits of the id spread over R, G, B from the top bit.

    Id 0 is black, 1 (128, 0, 0), 2 (0, 128, 0), ... and 255 (void) (224, 224, 192).
    """
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return tuple(out)


# cityscapesScripts labels.py: (labelId, trainId, name, colour); trainId 255 = not trained on.
# License plate (id -1) never appears in the *_gtFine_labelIds.png files.
CITYSCAPES_LABELS = (
    (0, 255, "unlabeled", (0, 0, 0)),
    (1, 255, "ego vehicle", (0, 0, 0)),
    (2, 255, "rectification border", (0, 0, 0)),
    (3, 255, "out of roi", (0, 0, 0)),
    (4, 255, "static", (0, 0, 0)),
    (5, 255, "dynamic", (111, 74, 0)),
    (6, 255, "ground", (81, 0, 81)),
    (7, 0, "road", (128, 64, 128)),
    (8, 1, "sidewalk", (244, 35, 232)),
    (9, 255, "parking", (250, 170, 160)),
    (10, 255, "rail track", (230, 150, 140)),
    (11, 2, "building", (70, 70, 70)),
    (12, 3, "wall", (102, 102, 156)),
    (13, 4, "fence", (190, 153, 153)),
    (14, 255, "guard rail", (180, 165, 180)),
    (15, 255, "bridge", (150, 100, 100)),
    (16, 255, "tunnel", (150, 120, 90)),
    (17, 5, "pole", (153, 153, 153)),
    (18, 255, "polegroup", (153, 153, 153)),
    (19, 6, "traffic light", (250, 170, 30)),
    (20, 7, "traffic sign", (220, 220, 0)),
    (21, 8, "vegetation", (107, 142, 35)),
    (22, 9, "terrain", (152, 251, 152)),
    (23, 10, "sky", (70, 130, 180)),
    (24, 11, "person", (220, 20, 60)),
    (25, 12, "rider", (255, 0, 0)),
    (26, 13, "car", (0, 0, 142)),
    (27, 14, "truck", (0, 0, 70)),
    (28, 15, "bus", (0, 60, 100)),
    (29, 255, "caravan", (0, 0, 90)),
    (30, 255, "trailer", (0, 0, 110)),
    (31, 16, "train", (0, 80, 100)),
    (32, 17, "motorcycle", (0, 0, 230)),
    (33, 18, "bicycle", (119, 11, 32)),
)


def cityscapes_train_classes() -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """The 19 training classes' names and colours, in trainId order."""
    trained = sorted((t, name, colour) for _, t, name, colour in CITYSCAPES_LABELS if t != 255)
    return tuple(n for _, n, _ in trained), tuple(c for _, _, c in trained)


def cityscapes_label_map() -> dict[int, int]:
    """labelId -> trainId (255: void) for the 34 ids a labelIds mask may hold."""
    return {i: t for i, t, _, _ in CITYSCAPES_LABELS}


ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave",
    "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip


def ade20k_label_map() -> dict[int, int]:
    """ADE20K mask value -> class id: 0 (other/unlabelled) is void, 1..150 become 0..149."""
    return {0: 255, **{k: k - 1 for k in range(1, len(ADE20K_CLASSES) + 1)}}
