"""Lesson 07 (TensorFlow Serving): the wrong answers a student is most likely to write, and the library shortcuts.

Each entry replaces one solution cell; ``tests/test_wrong_answers.py`` runs the real test
cell after it and requires the cell to fail. The comment above each entry says which part
of the test catches it (``visible`` or ``hidden``).
"""

from exercise_harness import WrongAnswer

_EXPORT = '''
def export_embedding_model(model, path, input_name="user_id", output_name="embedding"):
{body}
    return Path(path)
'''

# Exercise 1, export_embedding_model (2 points).
EXPORT = [
    # visible: no serving_default signature (nothing traced before the save)
    WrongAnswer(
        "export_embedding_model", "test_export_embedding_model",
        "tf.saved_model.save(model, path) without signatures",
        _EXPORT.format(body="    tf.saved_model.save(model, str(path))")),
    # visible: the input is named after the Python argument ('strings'), not input_name
    WrongAnswer(
        "export_embedding_model", "test_export_embedding_model",
        "TensorSpec without name=: the input takes the argument's name",
        _EXPORT.format(body='''    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(strings):
        return {output_name: model(strings)}

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})''')),
    # visible: a bare tensor output gets the generated name 'output_0'
    WrongAnswer(
        "export_embedding_model", "test_export_embedding_model",
        "returns the tensor, not {output_name: tensor}",
        _EXPORT.format(body='''    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=input_name)])
    def serve(strings):
        return model(strings)

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})''')),
    # visible: shape [1] refuses a batch of 3
    WrongAnswer(
        "export_embedding_model", "test_export_embedding_model",
        "input shape [1] instead of [None]",
        _EXPORT.format(body='''    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[tf.TensorSpec([1], tf.string, name=input_name)])
    def serve(strings):
        return {output_name: model(strings)}

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})''')),
]

_CONFIG_HEAD = '''
def pinned_model_config(name, base_path, versions, labels=None):
    versions = list(versions)
    labels = dict(labels or {})
'''

_CONFIG_CHECKS = '''    bad = [v for v in versions if isinstance(v, bool) or not isinstance(v, (int, np.integer))
           or v < 1]
    if not versions or bad:
        raise ValueError("bad versions")
    if any(v not in versions for v in labels.values()):
        raise ValueError("label to an unserved version")
'''


def _config(checks: str, policy: str, label_line: str) -> str:
    return _CONFIG_HEAD + checks + f'''    lines = ["model_config_list {{", "  config {{", f'    name: "{{name}}"',
             f'    base_path: "{{base_path}}"', '    model_platform: "tensorflow"', {policy}]
    lines += [{label_line} for label, v in labels.items()]
    return "\\n".join(lines + ["  }}", "}}"]) + "\\n"
'''


_SPECIFIC = '"    model_version_policy { specific { " + " ".join(f"versions: {int(v)}" for v in versions) + " } }"'
_LATEST = '"    model_version_policy { latest { num_versions: " + str(len(versions)) + " } }"'
_LABEL = "f'    version_labels {{ key: \"{label}\" value: {int(v)} }}'"

# Exercise 2, pinned_model_config (2 points).
CONFIG = [
    # visible: the policy is 'latest', not 'specific'
    WrongAnswer(
        "pinned_model_config", "test_pinned_model_config",
        "latest { num_versions: len(versions) } instead of a specific policy",
        _config(_CONFIG_CHECKS, _LATEST, _LABEL)),
    # visible: a label to an unserved version is accepted
    WrongAnswer(
        "pinned_model_config", "test_pinned_model_config",
        "no check that each label points to a served version",
        _config('''    if not versions:
        raise ValueError("no versions")
''', _SPECIFIC, _LABEL)),
    # visible: key and value swapped does not parse (value must be an integer)
    WrongAnswer(
        "pinned_model_config", "test_pinned_model_config",
        "version_labels with key = version and value = label",
        _config(_CONFIG_CHECKS, _SPECIFIC, "f'    version_labels {{ key: \"{int(v)}\" value: \"{label}\" }}'")),
    # hidden: booleans, floats, strings and non-positive versions are not refused
    WrongAnswer(
        "pinned_model_config", "test_pinned_model_config",
        "versions not validated (only emptiness and labels checked)",
        _config('''    if not versions:
        raise ValueError("no versions")
    if any(v not in versions for v in labels.values()):
        raise ValueError("label to an unserved version")
''', '"    model_version_policy { specific { " + " ".join(f"versions: {v}" for v in versions) + " } }"', _LABEL)),
    # visible: the library's config serves the latest versions of every course model
    WrongAnswer(
        "pinned_model_config", "test_pinned_model_config",
        "library shortcut: model_config_text",
        '''
from movierec.serving.export import model_config_text

def pinned_model_config(name, base_path, versions, labels=None):
    return model_config_text(base_path.rsplit("/", 1)[0], [name])
'''),
]

_META_HEAD = '''
def signature_from_metadata(body, signature_name="serving_default"):
    from tensorflow.core.framework import types_pb2
    signatures = body["metadata"]["signature_def"]["signature_def"]
{pick}
    def plain(tensors):
        out = {{}}
        for name, info in tensors.items():
            dims = info.get("tensor_shape", {{}}).get("dim", [])
            out[name] = ({dtype}, tuple({size} for d in dims))
        return out

    return {{"inputs": plain(signature.get("inputs", {{}})), "outputs": plain(signature.get("outputs", {{}}))}}
'''
_PICK = '''    if signature_name not in signatures:
        raise KeyError(signature_name)
    signature = signatures[signature_name]'''
_DTYPE = 'tf.dtypes.as_dtype(types_pb2.DataType.Value(info["dtype"])).name'
_SIZE = 'None if int(d["size"]) < 0 else int(d["size"])'

# Exercise 3, signature_from_metadata (2 points).
METADATA = [
    # visible: 'DT_FLOAT'[3:].lower() is 'float', not 'float32'
    WrongAnswer(
        "signature_from_metadata", "test_signature_from_metadata",
        "dtype from the enum name: DT_FLOAT -> 'float'",
        _META_HEAD.format(pick=_PICK, dtype='info["dtype"][3:].lower()', size=_SIZE)),
    # visible: -1 kept instead of None
    WrongAnswer(
        "signature_from_metadata", "test_signature_from_metadata",
        "sizes as ints, -1 kept for an unknown dimension",
        _META_HEAD.format(pick=_PICK, dtype=_DTYPE, size='int(d["size"])')),
    # hidden: sizes left as JSON strings ("8")
    WrongAnswer(
        "signature_from_metadata", "test_signature_from_metadata",
        "sizes left as the strings the JSON carries",
        _META_HEAD.format(pick=_PICK, dtype=_DTYPE, size='None if d["size"] == "-1" else d["size"]')),
    # visible/hidden: the first signature in the response (or __saved_model_init_op), whatever was asked
    WrongAnswer(
        "signature_from_metadata", "test_signature_from_metadata",
        "takes the first signature listed instead of signature_name",
        _META_HEAD.format(pick='''    signature = next(iter(signatures.values()))''', dtype=_DTYPE, size=_SIZE)),
]

WRONG_ANSWERS = EXPORT + CONFIG + METADATA
