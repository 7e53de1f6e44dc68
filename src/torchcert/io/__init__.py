"""Exchange formats of the verification field: ONNX networks (:mod:`.onnx`) and VNN-LIB properties
(:mod:`.vnnlib`). ``onnx`` is an optional dependency (``pip install torchcert[onnx]``), imported when used."""
