"""Turn either create payload into one validated :class:`CreateSpec`.

Everything a client can get wrong is checked here, before any progress is streamed, so that bad
input is answered with a plain 4xx instead of an error line in a 200 stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.api.types import CreateRequest
from corral.create.convert import detect_architecture
from corral.create.modelfile import parse_modelfile
from corral.create.quantize import parse_quant_type
from corral.errors import BadRequest, Forbidden, NotFound, TemplateError
from corral.gguf_info import is_gguf, read_gguf
from corral.models import load_model
from corral.names import ModelName, parse_digest, parse_name
from corral.options import validate_options
from corral.store import Store
from corral.template import Template

QUANTIZABLE = ("F16", "BF16", "F32")


@dataclass(frozen=True)
class CreateSpec:
    """What to build: one source (model, uploaded files or a server-side file) plus overrides."""

    name: ModelName
    from_model: ModelName | None = None
    from_files: tuple[tuple[str, str], ...] = ()
    from_path: Path | None = None
    from_dir: Path | None = None  # a safetensors checkpoint on the server's disk
    # more GGUF files on the server's disk (a second FROM, or a directory's other GGUFs): each
    # is a projector when its architecture is ``clip``
    more_paths: tuple[Path, ...] = ()
    adapter_files: tuple[tuple[str, str], ...] = ()
    adapter_paths: tuple[Path, ...] = ()
    template: str | None = None
    system: str | None = None
    licenses: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: tuple[dict[str, Any], ...] = ()
    quantize: str | None = None
    from_modelfile: bool = False


SERVER_PATHS_REFUSED = (
    "a FROM or ADAPTER path is read on the server only for clients on the server's own machine; "
    'upload the file as a blob (POST /api/blobs/:digest) and name it in "files"'
)


def spec_from_request(req: CreateRequest, store: Store, *, server_paths: bool = True) -> CreateSpec:
    """The create to run. ``server_paths``: whether the legacy ``modelfile`` payload may name
    files on the server's disk (only a client on the same machine, which could read them itself,
    may; corral's own CLI uploads them as blobs)."""
    raw_name = req.model or req.name or ""
    name = parse_name(raw_name)
    if req.modelfile is not None and req.from_ is None and req.files is None:
        spec = _from_modelfile(name, req.modelfile, req.path, server_paths)
    else:
        spec = _from_fields(name, req)
    quant = (req.quantize or req.quantization or "").strip() or None
    if quant is not None:
        quant = parse_quant_type(quant)[0]
    spec = CreateSpec(**{**spec.__dict__, "quantize": quant})
    _check_sources(spec, store)
    if spec.template is not None:
        check_template(spec.template)
    return spec


def check_template(text: str) -> None:
    try:
        Template.parse(text)
    except TemplateError as e:
        raise TemplateError(f"template error: {e}") from e


def _from_fields(name: ModelName, req: CreateRequest) -> CreateSpec:
    files = _checked_files(req.files or {})
    adapters = _checked_files(req.adapters or {})
    from_model = None
    if req.from_:
        from_model = parse_name(req.from_)
    elif not files:
        raise BadRequest("neither 'from' or 'files' was specified")
    licenses: tuple[str, ...] = ()
    if isinstance(req.license, str):
        licenses = (req.license,) if req.license else ()
    elif req.license is not None:
        licenses = tuple(req.license)
    params = validate_options(req.parameters) if req.parameters else {}
    messages = tuple(m.model_dump(exclude_none=True) for m in req.messages or [])
    for m in messages:
        _check_role(m["role"])
    return CreateSpec(
        name=name,
        from_model=from_model,
        from_files=files,
        adapter_files=adapters,
        template=req.template or None,
        system=req.system or None,
        licenses=licenses,
        parameters=params,
        messages=messages,
    )


def _check_role(role: str) -> None:
    if role not in ("system", "user", "assistant"):
        raise BadRequest('message role must be one of "system", "user", or "assistant"')


def _checked_files(files: dict[str, str]) -> tuple[tuple[str, str], ...]:
    out = []
    for fname, digest in sorted(files.items()):
        if not _valid_rel_path(fname):
            raise BadRequest("file path must be relative")
        if not digest:
            raise BadRequest("invalid digest format")
        out.append((fname, parse_digest(digest)))
    return tuple(out)


def _valid_rel_path(p: str) -> bool:
    """Go's io/fs.ValidPath: unrooted, slash-separated, no '.', '..' or empty elements."""
    if p == ".":
        return True
    if not p or p.startswith("/") or "\\" in p or "\x00" in p:
        return False
    return all(part not in ("", ".", "..") for part in p.split("/"))


def _from_modelfile(
    name: ModelName, text: str, path: str | None, server_paths: bool = True
) -> CreateSpec:
    mf = parse_modelfile(text)
    base_dir = Path(path).expanduser().parent if path else Path.cwd()
    from_model: ModelName | None = None
    from_files: tuple[tuple[str, str], ...] = ()
    from_path: Path | None = None
    from_dir: Path | None = None  # a safetensors checkpoint on the server's disk
    adapter_files: list[tuple[str, str]] = []
    adapter_paths: list[Path] = []
    paths: list[Path] = []
    for cmd in mf.commands:
        if cmd.name == "model":
            if cmd.args.startswith("@"):
                from_files += ((f"model-{len(from_files)}.gguf", parse_digest(cmd.args[1:])),)
            elif (p := _local_path(cmd.args, base_dir, server_paths)) is not None:
                ggufs = sorted(p.glob("*.gguf")) if p.is_dir() else [p]
                if ggufs:
                    paths += ggufs
                else:
                    from_dir = p
            elif from_model is not None:
                raise BadRequest("a Modelfile may name only one model to start FROM")
            else:
                from_model = parse_name(cmd.args)
        elif cmd.name == "adapter":
            if cmd.args.startswith("@"):
                adapter_files.append(("adapter.gguf", parse_digest(cmd.args[1:])))
            elif (p := _local_path(cmd.args, base_dir, server_paths)) is not None:
                adapter_paths.append(p)
            else:
                raise BadRequest(f"no such file or directory: {cmd.args}")
    if paths:
        from_path, more = paths[0], tuple(paths[1:])
    else:
        more = ()
    templates, systems = mf.values("template"), mf.values("system")
    messages = [{"role": role, "content": content} for role, content in mf.messages()]
    return CreateSpec(
        name=name,
        from_model=from_model,
        from_files=from_files,
        from_path=from_path,
        from_dir=from_dir,
        more_paths=more,
        adapter_files=tuple(adapter_files),
        adapter_paths=tuple(adapter_paths),
        template=templates[-1] if templates else None,
        system=systems[-1] if systems else None,
        licenses=tuple(mf.values("license")),
        parameters=dict(mf.parameters()),
        messages=tuple(messages),
        from_modelfile=True,
    )


def _local_path(arg: str, base_dir: Path, allowed: bool = True) -> Path | None:
    """A FROM/ADAPTER argument that names a file on this machine, or None for a model name.
    When not ``allowed``, the disk is not looked at: a path is refused, whether it exists or not
    (so a remote client cannot probe the server's files), and anything else is a model name."""
    explicit = arg.startswith(("/", "./", "../", "~"))
    if not allowed:
        if explicit or "\\" in arg:
            raise Forbidden(SERVER_PATHS_REFUSED)
        return None
    candidate = Path(arg).expanduser()
    if not candidate.is_absolute():
        candidate = base_dir / candidate
    if candidate.exists():
        if not (candidate.is_file() or candidate.is_dir()):  # a FIFO or a device could block
            raise BadRequest(f"not a regular file or directory: {arg}")
        return candidate.resolve()
    if explicit:
        raise BadRequest(f"no such file or directory: {arg}")
    return None


def is_safetensors(spec: CreateSpec) -> bool:
    return spec.from_dir is not None or any(f.endswith(".safetensors") for f, _ in spec.from_files)


def checkpoint_files(spec: CreateSpec, store: Store) -> dict[str, Path]:
    """The files of a safetensors checkpoint by their relative names."""
    if spec.from_dir is not None:
        root = spec.from_dir
        if not (root / "config.json").is_file():  # not a checkpoint: never walk any tree (/)
            raise BadRequest("open config.json: no such file or directory")
        return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
    return {name: store.blob_path(digest) for name, digest in spec.from_files}


def _check_sources(spec: CreateSpec, store: Store) -> None:
    """400/404s found before any work. A FROM model that is not here is not one of them: the
    create pulls it first (its own checks run once it is here)."""
    from_here = spec.from_model is not None and store.exists(spec.from_model)
    for _fname, digest in spec.from_files + spec.adapter_files:
        if not store.has_blob(digest):
            raise NotFound(f"blob {digest} not found")
    if is_safetensors(spec):
        detect_architecture(checkpoint_files(spec, store))  # 400 for an unknown architecture
        return
    ggufs = [store.blob_path(d) for _, d in spec.from_files]
    if spec.from_path is not None:
        ggufs.append(spec.from_path)
    ggufs += spec.more_paths
    for path in ggufs + list(spec.adapter_paths):
        if not is_gguf(path):
            raise BadRequest("supplied file was not in GGUF format")
    if spec.quantize is not None:
        sources = ggufs[:1]
        if spec.from_model is not None:
            if not from_here:
                return
            model_path = load_model(store, spec.from_model).model_path
            sources = [model_path] if model_path is not None else []
        for path in sources:
            if read_gguf(path).file_type_name not in QUANTIZABLE:
                raise BadRequest("quantization is only supported for F16, BF16 and F32 models")
