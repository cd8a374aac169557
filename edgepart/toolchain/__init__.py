"""The build and run machinery every stage shares: target presets, the TVM and onnxruntime
compilers (TVM in a process of its own), edgepart's CPU kernel library and its code generator, and
TVM's runtime loader. Profile uses it to measure what compile will build; compile, verify and run
to build and load tiers. It knows nothing of plans, profiles or manifests."""
