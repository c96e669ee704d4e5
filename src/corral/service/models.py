"""Step 1 of a request: resolve a model name to everything the server knows about the model.

A :class:`ModelView` holds the stored model (its manifest's layers), its GGUF header, its parsed
prompt template and its capabilities. Reading them is disk work and parsing, so it runs in a
worker thread, and the results are cached by digest: a view's content by its manifest's digest,
GGUF headers by the model blob's digest, parsed templates by their text. A model that is
re-created gets a new manifest digest, so a stale view is never served; only the manifest itself
is read again on each request (it names the digests).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from corral.errors import BadRequest, ModelNotFound, TemplateError
from corral.gguf_info import GGUFFile, read_gguf
from corral.models import StoredModel, model_from_entry
from corral.names import ModelName, parse_name
from corral.prompt import PromptTemplate
from corral.store import ManifestEntry, Store
from corral.store.manifests import MEDIA_MODEL, MEDIA_PROJECTOR
from corral.thinking import ThinkTags, infer_tags
from corral.tools import ToolCallFormat, infer_format

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "{{ .Prompt }}"

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A small thread-safe least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        found = self.get(key)
        return found if found is not None else self.put(key, make())


@dataclass(frozen=True)
class Template:
    """A parsed prompt template and the tool-call syntax it implies (learnt by rendering)."""

    prompt: PromptTemplate
    tool_format: ToolCallFormat | None
    think_tags: ThinkTags | None = None  # where the model's reasoning starts and ends


@dataclass(frozen=True)
class ModelView:
    """A stored model as requests see it."""

    stored: StoredModel
    gguf: GGUFFile | None
    parsed: Template | None
    capabilities: tuple[str, ...]
    template_error: str = ""  # why the stored template cannot be used
    projector: GGUFFile | None = None  # the header of the model's (first) vision projector

    @property
    def template(self) -> Template:
        """The model's parsed template; a stored template that does not parse is a 400."""
        if self.parsed is None:
            raise TemplateError(self.template_error or "template error")
        return self.parsed

    @property
    def name(self) -> ModelName:
        return self.stored.name

    @property
    def digest(self) -> str:
        return self.stored.entry.digest


class ModelCatalog:
    """Resolves names to :class:`ModelView` s, with the digest-keyed caches described above."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._views: LRU[str, ModelView] = LRU(64)
        self._gguf: LRU[str, GGUFFile] = LRU(16)
        self._templates: LRU[str, Template] = LRU(128)

    async def resolve(self, raw_name: str | None) -> ModelView:
        """The view of the model a request names; ``ModelNotFound`` quotes the name as sent."""
        if not raw_name:
            raise BadRequest("model is required")
        name = parse_name(raw_name)
        try:
            return await asyncio.to_thread(self._servable, name)
        except ModelNotFound as e:
            raise ModelNotFound(raw_name) from e

    async def template(self, text: str) -> Template:
        """A template given with a request (parsed in a thread the first time)."""
        found = self._templates.get(text)
        return found if found is not None else await asyncio.to_thread(self.parse_template, text)

    # ---- blocking: call from a worker thread ---------------------------------------------------

    def _servable(self, name: ModelName) -> ModelView:
        view = self.view(name)
        path = view.stored.model_path
        if path is None or not path.is_file():
            raise ModelNotFound(name.display_shortest())
        if view.gguf is None:
            raise BadRequest(f"{name.display_shortest()}: the model file is not a readable GGUF")
        return view

    def view(self, name: ModelName) -> ModelView:
        return self.view_of(self.store.read(name))

    def view_of(self, entry: ManifestEntry) -> ModelView:
        cached = self._views.get(entry.digest)
        if cached is not None:
            if cached.stored.name == entry.name and cached.stored.entry == entry:
                return cached
            # a copy of the same manifest, or the same one touched: same content, new identity
            return dataclasses.replace(
                cached, stored=dataclasses.replace(cached.stored, name=entry.name, entry=entry)
            )
        return self._views.put(entry.digest, self._build(entry))

    def _build(self, entry: ManifestEntry) -> ModelView:
        stored = model_from_entry(self.store, entry)
        gguf = self._gguf_of(stored, entry)
        try:
            template: Template | None = self.parse_template(stored.template or DEFAULT_TEMPLATE)
            error = ""
        except TemplateError as e:
            template, error = None, e.message
        uses = template.prompt.template.uses if template is not None and stored.template else None
        projector = self._gguf_of(stored, entry, MEDIA_PROJECTOR)
        has_projector = bool(stored.projector_paths)
        caps = (
            gguf.capabilities(stored.template, uses, has_projector=has_projector)
            if gguf is not None
            else ["completion"]
        )
        return ModelView(stored, gguf, template, tuple(caps), error, projector)

    def _gguf_of(
        self, stored: StoredModel, entry: ManifestEntry, media: str = MEDIA_MODEL
    ) -> GGUFFile | None:
        """The header of the model's weights (or of its first projector), cached by digest."""
        layer = entry.manifest.layer(media)
        if layer is None:
            return None
        path = stored.model_path if media == MEDIA_MODEL else self.store.blob_path(layer.digest)
        if path is None:
            return None
        try:
            return self._gguf.get_or_make(layer.digest, lambda: read_gguf(path))
        except Exception as e:
            log.warning("cannot read the GGUF of %s: %s", entry.name.display_shortest(), e)
            return None

    def parse_template(self, text: str) -> Template:
        def make() -> Template:
            prompt = PromptTemplate(text)
            return Template(prompt, infer_format(prompt), infer_tags(prompt.template))

        return self._templates.get_or_make(text, make)
