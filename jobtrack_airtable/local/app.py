"""The WSGI application of the local server: authentication, fault injection, rate limiting,
routing, request parsing and validation, and Airtable's response and error shapes.

Routing (werkzeug's :class:`~werkzeug.routing.Map`) matches the *raw* request path and
percent-decodes each captured segment, because table names may contain ``/`` (sent as
``%2F``) and a decoded ``PATH_INFO`` would split them.

Order of checks for each request (so an unauthenticated caller learns nothing, and injected
faults happen before any work): log → authenticate → inject fault → monthly quota (data
requests only) → rate limit → route → validate → apply → respond (or drop the connection for
``lost_response``).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload
from urllib.parse import quote, unquote

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.wrappers import Request, Response

from ..airtable import MAX_PAGE_SIZE
from . import attachments
from . import errors as E
from .comments import CommentStore
from .faults import FaultInjector, FiredFault
from .fieldmodels import check_api_create
from .query import (
    Budget,
    IteratorRegistry,
    RenderOptions,
    SortSpec,
    compile_filter,
    render,
    select,
)
from .quota import MonthlyQuota
from .ratelimit import RateLimiter
from .requestlog import LoggedRequest, RequestLog
from .storage import Record, Store, TableDef, is_id
from .users import LOCAL_USER, LOCAL_USER_ID
from .webhooks import Webhooks

log = logging.getLogger(__name__)

LOCAL_WORKSPACE_ID = "wspLocalServer001"
#: What ``GET /v0/meta/whoami`` answers: one local user, a token with the usual scopes.
TOKEN_SCOPES = (
    "data.records:read",
    "data.records:write",
    "schema.bases:read",
    "schema.bases:write",
    "webhook:manage",
)
#: Request bodies nesting deeper are refused (422): no Airtable body needs more than a few.
MAX_JSON_DEPTH = 64
#: Of an unauthenticated request, the log keeps the method and this many path characters.
_UNAUTHENTICATED_PATH = 200
_SORT_PARAM = re.compile(r"^sort\[(\d+)\]\[(field|direction)\]$")
_GET_RECORD_KEYS = frozenset({"cellFormat", "timeZone", "userLocale", "returnFieldsByFieldId"})
_LIST_COMMON_KEYS = _GET_RECORD_KEYS | {
    "filterByFormula",
    "maxRecords",
    "pageSize",
    "offset",
    "view",
}
# The same options as query parameters (GET) and in a JSON body (POST …/listRecords), where
# arrays lose their "[]" and sort is one list rather than indexed parameters.
_LIST_QUERY_KEYS = _LIST_COMMON_KEYS | {"fields[]", "recordMetadata[]"}
_LIST_BODY_KEYS = _LIST_COMMON_KEYS | {"fields", "recordMetadata", "sort"}


class _Segment(BaseConverter):
    """One *raw* path segment, percent-decoded after matching: table names may contain ``/``
    (sent as ``%2F``), which a decoded path would split."""

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return unquote(value)


_ALL = ["GET", "POST", "PATCH", "PUT", "DELETE"]
_ROUTES = Map(
    [
        Rule("/v0/meta/whoami", endpoint="whoami", methods=["GET"]),
        Rule("/v0/meta/bases", endpoint="bases", methods=["GET"]),
        Rule("/v0/meta/bases/<seg:base>", endpoint="meta_base", methods=["GET"]),
        Rule("/v0/meta/bases/<seg:base>/tables", endpoint="meta_tables", methods=["GET", "POST"]),
        Rule(
            "/v0/meta/bases/<seg:base>/tables/<seg:table>",
            endpoint="meta_table",
            methods=["PATCH"],
        ),
        Rule(
            "/v0/meta/bases/<seg:base>/tables/<seg:table>/fields",
            endpoint="meta_fields",
            methods=["POST"],
        ),
        Rule(
            "/v0/meta/bases/<seg:base>/tables/<seg:table>/fields/<seg:field>",
            endpoint="meta_field",
            methods=["PATCH"],
        ),
        Rule("/v0/bases/<seg:base>/webhooks", endpoint="webhooks", methods=["GET", "POST"]),
        Rule("/v0/bases/<seg:base>/webhooks/<seg:hook>", endpoint="webhooks", methods=["DELETE"]),
        Rule(
            "/v0/bases/<seg:base>/webhooks/<seg:hook>/<seg:action>",
            endpoint="webhooks",
            methods=["GET", "POST"],
        ),
        Rule("/v0/<seg:base>/<seg:table>", endpoint="records", methods=_ALL),
        Rule("/v0/<seg:base>/<seg:table>/listRecords", endpoint="list_records", methods=["POST"]),
        Rule(
            "/v0/<seg:base>/<seg:table>/<seg:record>",
            endpoint="record",
            methods=["GET", "PATCH", "PUT", "DELETE"],
        ),
        Rule(
            "/v0/<seg:base>/<seg:table>/<seg:record>/comments",
            endpoint="comments",
            methods=["GET", "POST"],
        ),
        Rule(
            "/v0/<seg:base>/<seg:table>/<seg:record>/comments/<seg:comment>",
            endpoint="comment",
            methods=["PATCH", "DELETE"],
        ),
        # Airtable serves this one on content.airtable.com; here it is on the same server.
        Rule(
            "/v0/<seg:base>/<seg:record>/<seg:field>/uploadAttachment",
            endpoint="upload",
            methods=["POST"],
        ),
    ],
    converters={"seg": _Segment},
    strict_slashes=False,
    merge_slashes=False,
)


class DropConnection(ConnectionAbortedError):
    """Raised to close the client connection without a response (injected faults).

    werkzeug's server treats a ``ConnectionError`` from the app as a dropped connection and
    writes nothing; the socket was already shut down, so the client sees the connection
    closed (``requests`` raises ``ConnectionError``)."""


@dataclass
class _Ctx:
    """What the handlers need to know about the current request."""

    method: str
    raw_path: str
    args: MultiDict[str, str]
    body: Any
    body_error: E.ApiError | None
    host_url: str = ""

    def json(self) -> Any:
        if self.body_error is not None:
            raise self.body_error
        if self.body is None:
            raise E.invalid_body("Request body is required")
        return self.body


class AirtableApp:
    """The WSGI callable.  Collaborators are injected so tests can reach each one."""

    def __init__(
        self,
        store: Store,
        *,
        token: str,
        rate_limiter: RateLimiter | None = None,
        token_limiter: RateLimiter | None = None,
        faults: FaultInjector | None = None,
        quota: MonthlyQuota | None = None,
        request_log: RequestLog | None = None,
        iterators: IteratorRegistry | None = None,
        max_body_bytes: int = 5 * 1024 * 1024,
        cpu_budget_seconds: float | None = 10.0,
        formula_fields_via_api: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not token:
            raise ValueError("a non-empty token is required")
        self.store = store
        self._token = f"Bearer {token}".encode()
        self.rate_limiter = rate_limiter if rate_limiter is not None else RateLimiter(None)
        self.token_limiter = token_limiter if token_limiter is not None else RateLimiter(None)
        self.faults = faults if faults is not None else FaultInjector()
        self.quota = quota if quota is not None else MonthlyQuota()
        self.request_log = request_log if request_log is not None else RequestLog()
        self.iterators = iterators if iterators is not None else IteratorRegistry()
        self.max_body_bytes = max_body_bytes
        #: CPU seconds one listing may spend filtering and sorting (``None``: unbounded).
        self.cpu_budget_seconds = cpu_budget_seconds
        #: Accept formula fields through the meta API (Airtable does not; the embedded base
        #: does, so ``schema init`` can create a working base).
        self.formula_fields_via_api = formula_fields_via_api
        self._clock = clock or (lambda: datetime.now(UTC))
        self.comments = CommentStore(self._clock)
        self.uploads = attachments.UploadedFiles(token)
        self.created_time = self._clock()
        self.webhooks = Webhooks(store, self._clock)

    # -- WSGI entry point -------------------------------------------------------------------

    def set_token(self, token: str) -> None:
        """Accept ``token`` from now on, and no other."""
        self._token = f"Bearer {token}".encode()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        try:
            response = self._handle(environ)
        except DropConnection:
            _shutdown(environ)
            raise
        except Exception:
            # Whatever went wrong, the client gets Airtable's JSON error shape, never HTML.
            log.exception("local Airtable: unexpected error")
            response = _error(E.ApiError(500, "SERVER_ERROR", "Unexpected server error"))
        return response(environ, start_response)

    def _handle(self, environ: dict[str, Any]) -> Response:
        request = Request(environ)
        method = request.method.upper()
        raw_path = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
        if not raw_path.startswith("/"):
            raw_path = quote(request.path)
        if method == "GET" and raw_path.startswith(attachments.UploadedFiles.PREFIX):
            # Signed like Airtable's attachment URLs: readable without the token.
            found = self.uploads.get(raw_path)
            if found is None:
                return _error(E.not_found())
            # Served as the uploader typed it, never sniffed into something else.
            return Response(
                found[1], content_type=found[0], headers={"X-Content-Type-Options": "nosniff"}
            )
        auth = request.headers.get("Authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(auth, self._token):
            # Nothing of an unauthenticated request is kept but a short line (method and the
            # start of its path): its body is never even read.
            entry = self.request_log.start(
                method, raw_path[:_UNAUTHENTICATED_PATH], request.path[:_UNAUTHENTICATED_PATH]
            )
            entry.status = 401
            resp = _error(E.auth_required())
            if request.content_length:
                resp.headers["Connection"] = "close"  # do not read a stranger's body to reuse
            return resp
        too_large = (request.content_length or 0) > self.max_body_bytes
        raw_body = b"" if too_large else request.get_data(cache=False)
        body, body_error = _parse_body(raw_body)
        entry = self.request_log.start(
            method,
            raw_path,
            request.path,
            request.args.to_dict(flat=False),
            body if body_error is None else raw_body.decode("utf-8", "replace"),
            size=len(raw_body) + len(raw_path) + len(environ.get("QUERY_STRING", "")),
        )
        try:
            response = self._respond(entry, request, method, raw_path, too_large, body, body_error)
        except DropConnection:
            entry.status = None
            raise
        entry.status = response.status_code
        return response

    def _respond(
        self,
        entry: LoggedRequest,
        request: Request,
        method: str,
        raw_path: str,
        too_large: bool,
        body: Any,
        body_error: E.ApiError | None,
    ) -> Response:
        fault = self.faults.pick(method, raw_path, request.path)
        if fault is not None:
            entry.fault = fault.kind
            early = self._early_fault(fault)
            if early is not None:
                return early
        segments = [unquote(s) for s in raw_path.split("/")[1:]]
        if segments and segments[-1] == "":
            segments.pop()
        base_id = _base_of(segments)
        if base_id is not None and not self.store.has_base(base_id):
            base_id = "<unknown base>"  # one key for all: client-chosen IDs must not pile up
        if _is_data(segments) and not self.quota.take():
            return _error(E.quota_exhausted())
        if base_id is not None and (
            not self.rate_limiter.allow(base_id) or not self.token_limiter.allow("token")
        ):
            return _error(E.rate_limited())
        if too_large:
            resp = _error(E.ApiError(413, "REQUEST_ENTITY_TOO_LARGE", "Request body is too large"))
            resp.headers["Connection"] = "close"
            return resp
        ctx = _Ctx(method, raw_path, request.args, body, body_error, request.host_url)
        try:
            status, payload = self._route(ctx)
            response = _json(status, payload)
        except E.ApiError as exc:
            response = _error(exc)
        except Exception:
            log.exception("local Airtable: unexpected error on %s %s", method, raw_path)
            response = _error(E.ApiError(500, "SERVER_ERROR", "Unexpected server error"))
        if fault is not None and fault.kind == "lost_response":
            # The write is committed (and persisted) by now; only the answer is lost.
            entry.status = None
            raise DropConnection("injected fault: response lost")
        return response

    @staticmethod
    def _early_fault(fault: FiredFault) -> Response | None:
        if fault.kind == "drop":
            raise DropConnection("injected fault: connection dropped")
        if fault.kind == "delay":
            time.sleep(fault.delay)
            return None
        if fault.kind == "429":
            return _error(E.rate_limited())
        if fault.kind == "403":
            return _error(
                E.ApiError(
                    403,
                    "INVALID_PERMISSIONS",
                    "You are not permitted to perform this operation",
                )
            )
        if fault.kind == "quota":
            return _error(E.quota_exhausted())
        if fault.kind == "500":
            return _error(E.ApiError(500, "SERVER_ERROR", "Server error"))
        if fault.kind == "502":
            return _error(E.ApiError(502, "BAD_GATEWAY", "Bad gateway"))
        if fault.kind == "503":
            resp = _error(
                E.ApiError(503, "RETRIABLE_ERROR", "Service unavailable, please retry later")
            )
            if fault.retry_after is not None:
                ra = fault.retry_after
                resp.headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
            return resp
        return None  # lost_response: handled after processing

    # -- routing ----------------------------------------------------------------------------

    def _route(self, ctx: _Ctx) -> tuple[int, Any]:
        path = ctx.raw_path[:-1] if ctx.raw_path.endswith("/") else ctx.raw_path
        try:
            endpoint, params = _ROUTES.bind("local").match(path, method=ctx.method)
        except HTTPException:  # no such route, or not with this method
            raise E.not_found() from None
        m = ctx.method
        if endpoint == "whoami":
            return 200, self._whoami()
        if endpoint == "bases":
            return 200, self._meta_bases(ctx)
        base_id = self._base(params["base"])
        if endpoint == "meta_base":
            return 200, self._meta_base(base_id)
        if endpoint == "upload":
            return 200, self._upload(ctx, base_id, params["record"], params["field"])
        if endpoint == "meta_tables":
            if m == "GET":
                return 200, self._meta_tables(ctx, base_id)
            return 200, self._meta_create_table(ctx, base_id)
        if endpoint == "webhooks":
            hook, action = params.get("hook"), params.get("action")
            return 200, self.webhooks.handle(m, base_id, hook, action, ctx.args, ctx.json)
        if endpoint == "meta_fields":
            return 200, self._meta_create_field(ctx, base_id, params["table"])
        if endpoint == "meta_table":
            return 200, self._meta_update_table(ctx, base_id, params["table"])
        if endpoint == "meta_field":
            return 200, self._meta_update_field(ctx, base_id, params["table"], params["field"])
        table = params["table"]
        if endpoint == "records":
            if m in ("GET", "HEAD"):
                return 200, self._list(ctx, base_id, table, _list_params_from_query(ctx.args))
            if m == "POST":
                return 200, self._create(ctx, base_id, table)
            if m in ("PATCH", "PUT"):
                return 200, self._update_many(ctx, base_id, table, replace=m == "PUT")
            return 200, self._delete_many(ctx, base_id, table)
        self.store.table(base_id, table)  # unknown table first, then the record ID
        if endpoint == "list_records":
            return 200, self._list(ctx, base_id, table, _list_params_from_body(ctx))
        rid = params["record"]
        if not is_id(rid, "rec"):
            raise E.not_found()
        if endpoint in ("comments", "comment"):
            return 200, self._comments(ctx, base_id, table, rid, params.get("comment"))
        if m in ("GET", "HEAD"):
            return 200, self._get(ctx, base_id, table, rid)
        if m == "DELETE":
            self.store.delete_records(base_id, table, [rid])
            self.comments.drop([rid])
            return 200, {"id": rid, "deleted": True}
        return 200, self._update_one(ctx, base_id, table, rid, replace=m == "PUT")

    def _base(self, base_id: str) -> str:
        if not is_id(base_id, "app"):
            raise E.not_found()
        if not self.store.has_base(base_id):
            raise E.model_not_found()
        return base_id

    # -- reads ------------------------------------------------------------------------------

    def _get(self, ctx: _Ctx, base_id: str, table_ref: str, rid: str) -> dict[str, Any]:
        _reject_unknown(ctx.args.keys(), _GET_RECORD_KEYS)
        table = self.store.table(base_id, table_ref)
        rec = self.store.get_record(base_id, table_ref, rid)
        options = RenderOptions(
            by_field_id=_flag(ctx.args.get("returnFieldsByFieldId")),
            cell_format=_cell_format(ctx.args.get("cellFormat"), ctx.args),
        )
        return render(table, rec, options, self._clock())

    def _list(self, ctx: _Ctx, base_id: str, table_ref: str, p: _ListParams) -> dict[str, Any]:
        table = self.store.table(base_id, table_ref)
        page_size = _int_param(p.page_size, "pageSize", MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        if p.offset not in (None, ""):  # offset= (empty) is no offset, as in Airtable
            listing, position = self.iterators.resume(base_id, table, p.offset)
            return self.iterators.page(listing, position, page_size)
        max_records = _int_param(p.max_records, "maxRecords", None, 1, None)
        wanted = None
        if p.fields is not None:
            wanted = tuple(_field(table, name) for name in p.fields)
        view = table.view(p.view) if p.view is not None else None
        if p.view is not None and view is None:
            raise E.ApiError(422, "VIEW_NAME_NOT_FOUND", f'Could not find view "{p.view}"')
        # A view filters the listing, and sorts it unless the request has its own sort.
        order = p.sort or (view.sort if view is not None else [])
        sort = [SortSpec(_field(table, name), desc) for name, desc in order]
        options = RenderOptions(wanted, p.by_field_id, _cell_format(p.cell_format, p.locale))
        filters = [t for t in (view.filter if view is not None else None, p.formula) if t]
        text = f"AND({filters[0]}, {filters[1]})" if len(filters) == 2 else "".join(filters)
        formula = compile_filter(table, text) if text else None
        table, records = self.store.snapshot_for(base_id, table_ref, formula)
        now = self._clock()
        result = select(
            table,
            records,
            formula=formula,
            sort=sort,
            max_records=max_records,
            now=now,
            budget=Budget(self.cpu_budget_seconds),
        )
        listing = self.iterators.start(base_id, table, result, options, now)
        return self.iterators.page(listing, 0, page_size)

    # -- writes -----------------------------------------------------------------------------

    def _create(self, ctx: _Ctx, base_id: str, table_ref: str) -> dict[str, Any]:
        table = self.store.table(base_id, table_ref)
        body = _object(ctx.json())
        typecast, by_id = _write_flags(body)
        if "records" in body:
            _reject_unknown(body, {"records", "typecast", "returnFieldsByFieldId"})
            items = [
                self._attached(table, _fields_of(r, allowed={"fields"}))
                for r in _records_list(body["records"])
            ]
            recs = self.store.create_records(base_id, table_ref, items, typecast=typecast)
            return {"records": self._render_all(table, recs, by_id)}
        if "fields" in body:
            _reject_unknown(body, {"fields", "typecast", "returnFieldsByFieldId"})
            [rec] = self.store.create_records(
                base_id,
                table_ref,
                [self._attached(table, _fields_of(body, allowed=set(body)))],
                typecast=typecast,
            )
            return self._render_all(table, [rec], by_id)[0]
        raise E.invalid_request("the body needs either 'records' or 'fields'")

    def _update_one(
        self, ctx: _Ctx, base_id: str, table_ref: str, rid: str, *, replace: bool
    ) -> dict[str, Any]:
        table = self.store.table(base_id, table_ref)
        body = _object(ctx.json())
        _reject_unknown(body, {"fields", "typecast", "returnFieldsByFieldId"})
        typecast, by_id = _write_flags(body)
        fields = self._attached(table, _fields_of(body, allowed=set(body)), rid)
        [rec] = self.store.update_records(
            base_id, table_ref, [(rid, fields)], replace=replace, typecast=typecast
        )
        return self._render_all(table, [rec], by_id)[0]

    def _update_many(
        self, ctx: _Ctx, base_id: str, table_ref: str, *, replace: bool
    ) -> dict[str, Any]:
        table = self.store.table(base_id, table_ref)
        body = _object(ctx.json())
        _reject_unknown(body, {"records", "typecast", "returnFieldsByFieldId", "performUpsert"})
        typecast, by_id = _write_flags(body)
        if "records" not in body:
            raise E.invalid_request("the body needs 'records'")
        raw = _records_list(body["records"])
        upsert = body.get("performUpsert")
        if upsert is not None:
            if not isinstance(upsert, Mapping) or set(upsert) != {"fieldsToMergeOn"}:
                raise E.invalid_request("performUpsert must be {'fieldsToMergeOn': [...]}")
            items = []
            for r in raw:
                r = _object(r)
                _reject_unknown(r, {"id", "fields"})
                items.append(
                    {
                        **({"id": r["id"]} if "id" in r else {}),
                        "fields": self._attached(
                            table, _fields_of(r, allowed={"id", "fields"}), r.get("id")
                        ),
                    }
                )
            recs, created, updated = self.store.upsert_records(
                base_id,
                table_ref,
                items,
                upsert["fieldsToMergeOn"],
                replace=replace,
                typecast=typecast,
            )
            return {
                "records": self._render_all(table, recs, by_id),
                "createdRecords": created,
                "updatedRecords": updated,
            }
        pairs = []
        for r in raw:
            r = _object(r)
            if "id" not in r:
                raise E.invalid_records("Each record must have an 'id' (or use performUpsert)")
            pairs.append(
                (r["id"], self._attached(table, _fields_of(r, allowed={"id", "fields"}), r["id"]))
            )
        recs = self.store.update_records(
            base_id, table_ref, pairs, replace=replace, typecast=typecast
        )
        return {"records": self._render_all(table, recs, by_id)}

    def _delete_many(self, ctx: _Ctx, base_id: str, table_ref: str) -> dict[str, Any]:
        self.store.table(base_id, table_ref)
        _reject_unknown(ctx.args.keys(), {"records[]"})
        ids = ctx.args.getlist("records[]")
        if not ids:
            raise E.invalid_request("give the records to delete as records[]=recXXX")
        for rid in ids:
            if not is_id(rid, "rec"):
                raise E.not_found()
        deleted = self.store.delete_records(base_id, table_ref, ids)
        self.comments.drop(deleted)
        return {"records": [{"id": rid, "deleted": True} for rid in deleted]}

    @staticmethod
    def _attached(table: TableDef, fields: dict[str, Any], rid: Any = None) -> dict[str, Any]:
        """``fields`` with attachment cells normalised to attachment objects (before the
        store's lock is taken: a URL may be read)."""
        out = dict(fields)
        for key, value in fields.items():
            fdef = table.field_named(key) if isinstance(key, str) else None
            if fdef is not None and fdef.type == "multipleAttachments":
                rec = table.records.get(rid) if isinstance(rid, str) else None
                out[key] = attachments.normalise(
                    value, rec.fields.get(fdef.name) or [] if rec else []
                )
        return out

    def _upload(self, ctx: _Ctx, base_id: str, rid: str, field_ref: str) -> dict[str, Any]:
        # Airtable: POST content.airtable.com/v0/{baseId}/{recordId}/{field}/uploadAttachment,
        # {contentType, filename, file (base64)}; answers the record with the field's cell,
        # keyed by field ID.
        if not is_id(rid, "rec"):
            raise E.not_found()
        table = next((t for t in self.store.tables(base_id) if rid in t.records), None)
        if table is None:
            raise E.record_not_found(rid)
        fdef = table.field_named(field_ref)
        if fdef is None:
            raise E.unknown_field(field_ref)
        if fdef.type != "multipleAttachments":
            raise E.bad_value(fdef.name, "uploads go to attachment fields only")
        added = self.uploads.add(ctx.host_url, ctx.json())
        with self.store.lock:  # read-modify-write of the cell, atomic against other writers
            current = self.store.get_record(base_id, table.id, rid).fields.get(fdef.name) or []
            [rec] = self.store.update_records(
                base_id, table.id, [(rid, {fdef.name: [*current, added]})]
            )
        return {
            "id": rec.id,
            "createdTime": rec.created_time,
            "fields": {fdef.id: rec.fields.get(fdef.name, [])},
        }

    def _comments(
        self, ctx: _Ctx, base_id: str, table_ref: str, rid: str, comment_id: str | None
    ) -> dict[str, Any]:
        # Airtable's record comments: GET/POST …/{recordId}/comments, PATCH/DELETE
        # …/comments/{rowCommentId}; one page, newest first.
        self.store.get_record(base_id, table_ref, rid)
        if ctx.method == "GET":
            _reject_unknown(ctx.args.keys(), {"pageSize", "offset"})
            size = _int_param(ctx.args.get("pageSize"), "pageSize", MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE)
            # The offset is where the next page starts in the newest-first list.
            start = _int_param(ctx.args.get("offset") or None, "offset", 0, 0, None)
            comments = self.comments.of(rid)
            more = start + size < len(comments)
            return {
                "comments": comments[start : start + size],
                "offset": str(start + size) if more else None,
            }
        if ctx.method == "DELETE":
            assert comment_id is not None
            self.comments.delete(rid, comment_id)
            return {"id": comment_id, "deleted": True}
        body = _object(ctx.json())
        _reject_unknown(body, {"text", "parentCommentId"})
        if comment_id is None:
            return self.comments.create(rid, body.get("text"))
        return self.comments.update(rid, comment_id, body.get("text"))

    def _render_all(self, table: TableDef, recs: list[Record], by_id: bool) -> list[dict]:
        now = self._clock()
        options = RenderOptions(by_field_id=by_id)
        return [render(table, r, options, now) for r in recs]

    # -- meta API ---------------------------------------------------------------------------

    @staticmethod
    def _whoami() -> dict[str, Any]:
        # A personal access token's answer: the user and the token's scopes.
        return {"id": LOCAL_USER_ID, "scopes": list(TOKEN_SCOPES)}

    def _meta_bases(self, ctx: _Ctx) -> dict[str, Any]:
        _reject_unknown(ctx.args.keys(), {"offset"})
        if ctx.args.get("offset"):
            raise E.ApiError(422, "INVALID_OFFSET_VALUE", "The offset is not valid")
        return {
            "bases": [
                {"id": b.id, "name": b.name, "permissionLevel": "create"}
                for b in (self.store.base(i) for i in self.store.base_ids())
            ]
        }

    def _meta_base(self, base_id: str) -> dict[str, Any]:
        # Airtable's "get base collaborators": the base and who may use it (one local user).
        created = self.created_time.isoformat().replace("+00:00", "Z")
        return {
            "id": base_id,
            "name": self.store.base(base_id).name,
            "createdTime": created,
            "permissionLevel": "create",
            "workspaceId": LOCAL_WORKSPACE_ID,
            "interfaces": {},
            "groupCollaborators": {"baseCollaborators": [], "workspaceCollaborators": []},
            "individualCollaborators": {
                "baseCollaborators": [
                    {
                        "userId": LOCAL_USER_ID,
                        "email": LOCAL_USER["email"],
                        "permissionLevel": "create",
                        "createdTime": created,
                        "grantedByUserId": LOCAL_USER_ID,
                    }
                ],
                "workspaceCollaborators": [],
            },
            "inviteLinks": {"baseInviteLinks": [], "workspaceInviteLinks": []},
        }

    def _meta_tables(self, ctx: _Ctx, base_id: str) -> dict[str, Any]:
        visible = "visibleFieldIds" in ctx.args.getlist("include")
        return {
            "tables": [t.to_meta(visible_field_ids=visible) for t in self.store.tables(base_id)]
        }

    def _meta_create_table(self, ctx: _Ctx, base_id: str) -> dict[str, Any]:
        body = _object(ctx.json())
        _reject_unknown(body, {"name", "fields", "description"})
        # A JSON value (missing: None); create_table answers 422 unless it is a non-empty string.
        name: Any = body.get("name")
        fields = body.get("fields") or []
        if isinstance(fields, list):
            for spec in fields:
                check_api_create(str(name), spec, allow_formulas=self.formula_fields_via_api)
        table = self.store.create_table(base_id, name, fields, body.get("description"))
        return table.to_meta()

    def _meta_create_field(self, ctx: _Ctx, base_id: str, table_ref: str) -> dict[str, Any]:
        body = _object(ctx.json())
        _reject_unknown(body, {"name", "type", "options", "description"})
        table = self.store.table(base_id, table_ref)
        check_api_create(table.name, body, allow_formulas=self.formula_fields_via_api)
        return self.store.create_field(base_id, table_ref, body).to_meta()

    def _meta_update_table(self, ctx: _Ctx, base_id: str, table_ref: str) -> dict[str, Any]:
        # Airtable: PATCH /v0/meta/bases/{baseId}/tables/{tableIdOrName}, name/description.
        body = _object(ctx.json())
        _reject_unknown(body, {"name", "description"})
        if not body:
            raise E.invalid_request("give a name or a description to change")
        return self.store.update_table(base_id, table_ref, body).to_meta()

    def _meta_update_field(
        self, ctx: _Ctx, base_id: str, table_ref: str, field_id: str
    ) -> dict[str, Any]:
        # Airtable: PATCH /v0/meta/bases/{baseId}/tables/{tableIdOrName}/fields/{columnId},
        # name/description; answers the field model.
        body = _object(ctx.json())
        _reject_unknown(body, {"name", "description"})
        if not body:
            raise E.invalid_request("give a name or a description to change")
        return self.store.update_field(base_id, table_ref, field_id, body).to_meta()


# -- request parsing helpers ------------------------------------------------------------------


@dataclass
class _ListParams:
    fields: list[str] | None = None
    formula: str | None = None
    max_records: Any = None
    page_size: Any = None
    offset: Any = None
    view: str | None = None
    cell_format: Any = None
    by_field_id: bool = False
    sort: list[tuple[str, bool]] = field(default_factory=list)
    locale: Mapping[str, Any] | None = None


def _list_params_from_query(args: MultiDict[str, str]) -> _ListParams:
    sort: dict[int, dict[str, str]] = {}
    for key in args:
        if (m := _SORT_PARAM.match(key)) is not None:
            sort.setdefault(int(m.group(1)), {})[m.group(2)] = args[key]
        elif key not in _LIST_QUERY_KEYS:
            raise E.invalid_request(f"unknown query parameter {key!r}")
    formula = args.get("filterByFormula")
    return _ListParams(
        fields=args.getlist("fields[]") if "fields[]" in args else None,
        formula=formula,
        max_records=args.get("maxRecords"),
        page_size=args.get("pageSize"),
        offset=args.get("offset"),
        view=args.get("view"),
        cell_format=args.get("cellFormat"),
        by_field_id=_flag(args.get("returnFieldsByFieldId")),
        sort=[_sort_entry(sort[i]) for i in sorted(sort)],
        locale=args,
    )


def _list_params_from_body(ctx: _Ctx) -> _ListParams:
    body = _object(ctx.json())
    _reject_unknown(body, _LIST_BODY_KEYS)
    fields = body.get("fields")
    if fields is not None and (
        not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)
    ):
        raise E.invalid_request("fields must be a list of field names")
    sort = body.get("sort") or []
    if not isinstance(sort, list) or not all(isinstance(s, Mapping) for s in sort):
        raise E.invalid_request("sort must be a list of {field, direction}")
    formula = body.get("filterByFormula")
    if formula is not None and not isinstance(formula, str):
        raise E.invalid_request("filterByFormula must be a string")
    view = body.get("view")
    return _ListParams(
        fields=fields,
        formula=formula,
        max_records=body.get("maxRecords"),
        page_size=body.get("pageSize"),
        offset=body.get("offset"),
        view=view if isinstance(view, str) else None,
        cell_format=body.get("cellFormat"),
        by_field_id=bool(body.get("returnFieldsByFieldId")),
        sort=[_sort_entry(s) for s in sort],
        locale={**ctx.args.to_dict(), **body},
    )


def _sort_entry(entry: Mapping[str, Any]) -> tuple[str, bool]:
    name = entry.get("field")
    direction = entry.get("direction", "asc")
    if not isinstance(name, str) or direction not in ("asc", "desc"):
        raise E.invalid_request("each sort needs a field and a direction of 'asc' or 'desc'")
    return name, direction == "desc"


def _field(table: TableDef, name: str) -> Any:
    fdef = table.field_named(name)
    if fdef is None:
        raise E.unknown_field(name)
    return fdef


@overload
def _int_param(value: Any, name: str, default: int, lo: int, hi: int | None) -> int: ...
@overload
def _int_param(value: Any, name: str, default: None, lo: int, hi: int | None) -> int | None: ...
def _int_param(value: Any, name: str, default: int | None, lo: int, hi: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool):
        raise E.invalid_request(f"{name} must be an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise E.invalid_request(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, float) and not value.is_integer():
        raise E.invalid_request(f"{name} must be an integer, got {value!r}")
    if number < lo or (hi is not None and number > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise E.invalid_request(f"{name} must be {bound}, got {number}")
    return number


def _cell_format(value: Any, locale: Mapping[str, Any] | None) -> str:
    if value in (None, "json"):
        return "json"
    if value == "string":
        if not locale or not locale.get("timeZone") or not locale.get("userLocale"):
            raise E.invalid_request("cellFormat 'string' requires timeZone and userLocale")
        return "string"
    raise E.invalid_request(f"cellFormat must be 'json' or 'string', got {value!r}")


def _flag(value: Any) -> bool:
    return isinstance(value, str) and value.lower() in ("1", "true")


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise E.invalid_request("expected a JSON object")
    return value


def _records_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise E.invalid_records("records must be an array")
    return value


def _fields_of(record: Any, *, allowed: set[str]) -> dict[str, Any]:
    record = _object(record)
    _reject_unknown(record, allowed | {"fields"})
    fields = record.get("fields", {})
    if not isinstance(fields, dict):
        raise E.invalid_request("fields must be an object")
    return fields


def _write_flags(body: Mapping[str, Any]) -> tuple[bool, bool]:
    typecast = body.get("typecast", False)
    by_id = body.get("returnFieldsByFieldId", False)
    if not isinstance(typecast, bool) or not isinstance(by_id, bool):
        raise E.invalid_request("typecast and returnFieldsByFieldId must be booleans")
    return typecast, by_id


def _reject_unknown(keys: Iterable[str], allowed: Iterable[str]) -> None:
    extra = sorted(set(keys) - set(allowed))
    if extra:
        raise E.invalid_request(f"unknown parameter(s) {extra}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_body(raw: bytes) -> tuple[Any, E.ApiError | None]:
    if not raw.strip():
        return None, None
    if _raw_too_deep(raw):
        # Refused before parsing: json's C parser recurses to the interpreter's limit on a
        # deep body, and a garbage-collector finalizer run at that depth fails in its turn.
        return None, E.invalid_body(
            f"Could not parse request body: nested deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        # parse_constant refuses NaN/Infinity, which Python's json would otherwise accept.
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        if _too_deep(body):
            return None, E.invalid_body(
                f"Could not parse request body: nested deeper than {MAX_JSON_DEPTH} levels"
            )
        # A "\ud800" escape parses into a lone surrogate, which is not text: refuse it
        # before it is stored, as Airtable does, rather than fail to encode it later.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
        return body, None
    except (UnicodeDecodeError, UnicodeEncodeError, ValueError) as exc:
        return None, E.invalid_body(f"Could not parse request body: {exc}")
    except RecursionError:
        return None, E.invalid_body("Could not parse request body: nested too deeply")


def _raw_too_deep(raw: bytes) -> bool:
    """Whether the JSON text ``raw`` opens more than :data:`MAX_JSON_DEPTH` brackets at once
    (strings skipped).  Scanned only when it holds that many brackets at all, so ordinary
    bodies cost two ``bytes.count`` calls.

    >>> _raw_too_deep(b"[" * 100 + b"]" * 100), _raw_too_deep(b'{"a": "[[[[[[[["}')
    (True, False)
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests deeper than :data:`MAX_JSON_DEPTH` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _is_data(segments: list[str]) -> bool:
    """A data request (records), which the monthly quota counts; ``/v0/meta/*`` is not."""
    return len(segments) >= 2 and segments[0] == "v0" and segments[1] != "meta"


def _base_of(segments: list[str]) -> str | None:
    if len(segments) >= 2 and segments[0] == "v0":
        if segments[1] == "bases" and len(segments) >= 3:  # the webhooks API
            return segments[2]
        if segments[1] != "meta":
            return segments[1]
        if len(segments) >= 4 and segments[2] == "bases":
            return segments[3]
    return None


def _json(status: int, payload: Any) -> Response:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(data, status=status, content_type="application/json; charset=utf-8")


def _error(exc: E.ApiError) -> Response:
    resp = _json(exc.status, exc.body())
    for k, v in exc.headers.items():
        resp.headers[k] = v
    return resp


def _shutdown(environ: Mapping[str, Any]) -> None:
    sock = environ.get("local.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
