"""GPU figures (issue 19): a CUDA build of the vendored llama.cpp, our engine fully
offloaded, llama.cpp's own benches beside it, and the embedder, prepared here and run on a
lent GPU machine in a few calls: ``stage`` (here), ``plan`` (what each call carries),
``device`` (there), ``measure`` and ``report``. No test depends on a GPU."""
