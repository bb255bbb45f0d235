"""Class sets and names: the bundled ImageNet-1K metadata, the bundled hierarchy, WordNet 3.0, the synset API."""
