"""Planted secrets of every supported kind, and a scanner that proves none of them was written.

Reusable by every end-to-end test that must show secrets never reach disk, database, exports or
pages (classic AG2 here; the ``ag2`` 1.x generation and the CSV exports reuse it)::

    corpus = planted_corpus(seed=7)              # one Sample per kind of PATTERNS, plus key-name ones
    ... put sample.text (or sample.secret under a sensitive key) wherever AG2 will log it ...
    findings = scan_everything(corpus.secrets, logs_dir=..., client=admin_client)
    assert findings == []

``scan_everything(..., client=...)`` reads, besides files and rows, every page an admin user can
open or download: the app index, each list and change page, each list's CSV export, each report
page (overview, breakdowns, model comparison) as HTML and as CSV over periods covering every
recorded day, and the timeline of every session present (HTML and CSV). Pages are searched as
served and decoded (HTML entities, percent-encoding, CSV quoting), so an escaped secret counts.

Every value is generated from a seeded ``random.Random`` at test time: no secret-shaped literal is
committed to the repository. Each ``Sample`` is the text as a user or a config would hold it (the
secret in its context, e.g. ``DB_PASSWORD=...``) and the secret itself, the part that must never
be found anywhere.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import random
import string
import subprocess
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
TOKEN = ALNUM + "_-"
B64 = ALNUM + "+/"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


@dataclass(frozen=True)
class Sample:
    kind: str
    text: str  # the secret in its usual context
    secret: str  # what must never be written (distinctive, 8+ characters)


def _s(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _with_digit(rng: random.Random, alphabet: str, n: int) -> str:
    """Random characters with at least one digit and one letter (as real credentials have)."""
    body = _s(rng, alphabet, n - 2)
    return rng.choice(string.ascii_letters) + body + rng.choice(string.digits)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


def _prefixed(
    prefix: str, alphabet: str, n: int, suffix: str = ""
) -> Callable[[random.Random], tuple[str, str]]:
    def make(rng: random.Random) -> tuple[str, str]:
        value = prefix + _s(rng, alphabet, n) + suffix
        return value, value

    return make


def _pem(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(["RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED ", "DSA "])
    lines = [_s(rng, B64, 64) for _ in range(rng.randint(2, 5))]
    text = f"-----BEGIN {label}PRIVATE KEY-----\n" + "\n".join(lines) + f"\n-----END {label}PRIVATE KEY-----"
    return text, lines[0]


def _anthropic(rng: random.Random) -> tuple[str, str]:
    value = "sk-ant-api03-" + _s(rng, TOKEN, 93) + "AA"
    return value, value


def _openai(rng: random.Random) -> tuple[str, str]:
    value = rng.choice(
        [
            "sk-proj-" + _s(rng, TOKEN, 156),
            "sk-" + _s(rng, ALNUM, 48),
            "sk-svcacct-" + _s(rng, TOKEN, 74),
            "sk-" + _s(rng, HEX, 32),  # DeepSeek and other sk- providers
        ]
    )
    return value, value


def _jwt(rng: random.Random) -> tuple[str, str]:
    def seg(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    header = seg('{"alg":"HS256","typ":"JWT"}')
    payload = seg('{"sub":"' + _s(rng, ALNUM, 12) + '","iat":' + str(rng.randint(10**9, 2 * 10**9)) + "}")
    value = f"{header}.{payload}.{_s(rng, TOKEN, 43)}"
    return value, value


def _bearer(rng: random.Random) -> tuple[str, str]:
    token = _with_digit(rng, ALNUM + "._~-", rng.randint(20, 60))
    return f"Bearer {token}", token


def _basic(rng: random.Random) -> tuple[str, str]:
    creds = f"{_s(rng, string.ascii_lowercase, 6)}:{_with_digit(rng, ALNUM + '!#%', 14)}"
    token = base64.b64encode(creds.encode()).decode()
    return f"Basic {token}", token


def _authorization(rng: random.Random) -> tuple[str, str]:
    scheme = rng.choice(["Token", "Digest", "ApiKey", "AWS4-HMAC-SHA256"])
    token = _with_digit(rng, ALNUM, 32)
    return f"Authorization: {scheme} {token}", token


def _cookie(rng: random.Random) -> tuple[str, str]:
    value = _with_digit(rng, LOWER_ALNUM, 32)
    return f"Cookie: sessionid={value}; csrftoken={_s(rng, ALNUM, 32)}", value


def _url_password(rng: random.Random) -> tuple[str, str]:
    password = _with_digit(rng, ALNUM + "!$%^*", 16)
    scheme = rng.choice(["postgres", "postgresql+psycopg", "mysql", "redis", "amqp", "mongodb+srv", "https"])
    user = rng.choice(["app", "", "admin_user"])
    return f"{scheme}://{user}:{password}@db{rng.randint(1, 9)}.internal.example:5432/app", password


def _connection_string(rng: random.Random) -> tuple[str, str]:
    password = _with_digit(rng, ALNUM, 8) + " " + _with_digit(rng, ALNUM + "!#", 8)
    key = rng.choice(["Password", "Pwd", "AccountKey"])
    return f"Server=tcp:sql.example,1433;Database=app;User Id=sa;{key}={password};Encrypt=True", password


def _query(rng: random.Random) -> tuple[str, str]:
    value = _with_digit(rng, ALNUM, 24)
    name = rng.choice(["token", "access_token", "api_key", "sig", "password"])
    return f"https://files.example.com/v1/report?page=2&{name}={value}&format=csv", value


def _env(rng: random.Random) -> tuple[str, str]:
    value = _with_digit(rng, ALNUM + "/+", 30)
    name = rng.choice(
        ["OPENAI_API_KEY", "DB_PASSWORD", "STRIPE_SECRET", "SECRET_KEY", "AUTH_TOKEN", "PGPASSWORD"]
    )
    return f"{rng.choice(['export ', ''])}{name}={value}", value


def _assignment(rng: random.Random) -> tuple[str, str]:
    value = _with_digit(rng, ALNUM + "!@#$%", 18)
    form = rng.choice(
        [
            'password = "{v}"',
            "client_secret: '{v}'",
            '"db_password": "{v}"',
            "api_key: {v}",
            "apiKey: {v}",
            "x-api-key: {v}",
        ]
    )
    return form.format(v=value), value


def _phrase(rng: random.Random) -> tuple[str, str]:
    value = _with_digit(rng, ALNUM + "!&", 12)
    return f"my password is {value} for the staging box", value


def _slack_token(rng: random.Random) -> tuple[str, str]:
    value = f"xoxb-{rng.randint(10**10, 10**12)}-{rng.randint(10**10, 10**12)}-{_s(rng, ALNUM, 24)}"
    return value, value


def _slack_webhook(rng: random.Random) -> tuple[str, str]:
    secret = _s(rng, ALNUM, 24)
    return (
        f"https://hooks.slack.com/services/T{_s(rng, UPPER_ALNUM, 8)}/B{_s(rng, UPPER_ALNUM, 10)}/{secret}",
        secret,
    )


def _discord_webhook(rng: random.Random) -> tuple[str, str]:
    secret = _s(rng, TOKEN, 68)
    return f"https://discord.com/api/webhooks/{rng.randint(10**17, 10**18)}/{secret}", secret


def _teams_webhook(rng: random.Random) -> tuple[str, str]:
    secret = _s(rng, HEX, 32)
    url = (
        f"https://acme.webhook.office.com/webhookb2/{_uuid(rng)}@{_uuid(rng)}/IncomingWebhook/"
        f"{secret}/{_uuid(rng)}"
    )
    return url, secret


def _telegram(rng: random.Random) -> tuple[str, str]:
    value = f"{rng.randint(10**8, 10**9)}:AA{_s(rng, TOKEN, 33)}"
    return value, value


def _discord_bot(rng: random.Random) -> tuple[str, str]:
    value = f"M{_s(rng, ALNUM, 23)}.{_s(rng, TOKEN, 6)}.{_s(rng, TOKEN, 27)}"
    return value, value


def _plaid(rng: random.Random) -> tuple[str, str]:
    value = f"access-{rng.choice(['sandbox', 'production'])}-{_uuid(rng)}"
    return value, value


def _azure_ad(rng: random.Random) -> tuple[str, str]:
    value = (
        _s(rng, ALNUM, 3) + str(rng.randint(0, 9)) + "Q~" + _s(rng, ALNUM + "_~.-", 33) + rng.choice(ALNUM)
    )
    return value, value


def _generic(rng: random.Random) -> tuple[str, str]:
    hex_key = rng.choice("abcdef") + _s(rng, HEX, 30) + rng.choice("0123456789")  # an Azure key
    value = rng.choice([hex_key, _with_digit(rng, ALNUM, 40), _with_digit(rng, B64, 44)])
    form = rng.choice(
        [
            "azure key: {v}",
            "Incorrect API key provided: {v}. You can find your key elsewhere",
            "the secret for prod is {v}",
            "deploy token for staging => {v}",
        ]
    )
    return form.format(v=value), value


#: kind -> generator of (text, secret). Every kind of ``ag2_logging.redaction.PATTERNS`` has one
#: (a test checks it).
GENERATORS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "pem_private_key": _pem,
    "age_secret_key": _prefixed("AGE-SECRET-KEY-1", BECH32, 58),
    "anthropic_key": _anthropic,
    "openrouter_key": _prefixed("sk-or-v1-", HEX, 64),
    "openai_key": _openai,
    "google_api_key": _prefixed("AIza", ALNUM, 35),
    "groq_key": _prefixed("gsk_", ALNUM, 52),
    "xai_key": _prefixed("xai-", ALNUM, 80),
    "huggingface_token": _prefixed("hf_", ALNUM, 34),
    "perplexity_key": _prefixed("pplx-", ALNUM, 48),
    "replicate_token": _prefixed("r8_", ALNUM, 37),
    "langsmith_key": _prefixed("lsv2_pt_", HEX, 32, "_" + "3f9a1c2b7d"),
    "together_key": _prefixed("tgp_v1_", TOKEN, 43),
    "aws_access_key_id": _prefixed("AKIA", UPPER_ALNUM, 16),
    "google_oauth_secret": _prefixed("GOCSPX-", TOKEN, 28),
    "google_oauth_token": _prefixed("ya29.", TOKEN, 120),
    "google_refresh_token": _prefixed("1//0", TOKEN, 60),
    "azure_ad_client_secret": _azure_ad,
    "digitalocean_token": _prefixed("dop_v1_", HEX, 64),
    "alibaba_access_key_id": _prefixed("LTAI", ALNUM, 20),
    "databricks_token": _prefixed("dapi", HEX, 32),
    "heroku_key": _prefixed("HRKU-", TOKEN, 60),
    "hashicorp_vault_token": _prefixed("hvs.", TOKEN, 90),
    "terraform_token": lambda rng: (lambda v: (v, v))(f"{_s(rng, ALNUM, 14)}.atlasv1.{_s(rng, TOKEN, 67)}"),
    "pulumi_token": _prefixed("pul-", HEX, 40),
    "doppler_token": _prefixed("dp.pt.", ALNUM, 43),
    "grafana_token": _prefixed("glc_", ALNUM, 80),
    "newrelic_key": _prefixed("NRAK-", UPPER_ALNUM, 27),
    "sentry_token": _prefixed("sntrys_", ALNUM, 80),
    "cloudflare_origin_ca_key": lambda rng: (lambda v: (v, v))(
        f"v1.0-{_s(rng, HEX, 24)}-{_s(rng, HEX, 146)}"
    ),
    "github_token": lambda rng: (lambda v: (v, v))(
        rng.choice(
            [
                "ghp_" + _s(rng, ALNUM, 36),
                "github_pat_" + _s(rng, ALNUM + "_", 82),
                "ghs_" + _s(rng, ALNUM, 36),
            ]
        )
    ),
    "gitlab_token": _prefixed("glpat-", TOKEN, 20),
    "bitbucket_token": _prefixed("ATBB", ALNUM, 32),
    "atlassian_token": _prefixed("ATATT3", TOKEN, 180),
    "slack_token": _slack_token,
    "slack_webhook": _slack_webhook,
    "discord_webhook": _discord_webhook,
    "discord_bot_token": _discord_bot,
    "telegram_bot_token": _telegram,
    "teams_webhook": _teams_webhook,
    "facebook_token": _prefixed("EAAB", ALNUM, 150),
    "twilio_key": _prefixed("SK", HEX, 32),
    "sendgrid_key": lambda rng: (lambda v: (v, v))(f"SG.{_s(rng, TOKEN, 22)}.{_s(rng, TOKEN, 43)}"),
    "mailgun_key": _prefixed("key-", HEX, 32),
    "mailchimp_key": lambda rng: (lambda v: (v, v))(f"{_s(rng, HEX, 32)}-us{rng.randint(1, 21)}"),
    "brevo_key": lambda rng: (lambda v: (v, v))(f"xkeysib-{_s(rng, HEX, 64)}-{_s(rng, ALNUM, 16)}"),
    "stripe_key": lambda rng: (lambda v: (v, v))(rng.choice(["sk", "rk"]) + "_live_" + _s(rng, ALNUM, 99)),
    "stripe_webhook_secret": _prefixed("whsec_", ALNUM, 32),
    "square_token": _prefixed("sq0csp-", TOKEN, 43),
    "braintree_token": lambda rng: (lambda v: (v, v))(
        f"access_token$production${_s(rng, LOWER_ALNUM, 16)}${_s(rng, HEX, 32)}"
    ),
    "shopify_token": _prefixed("shpat_", HEX, 32),
    "plaid_token": _plaid,
    "flutterwave_key": _prefixed("FLWSECK_TEST-", HEX, 32, "-X"),
    "npm_token": _prefixed("npm_", ALNUM, 36),
    "pypi_token": _prefixed("pypi-AgEIcHlwaS5vcmc", TOKEN, 70),
    "rubygems_key": _prefixed("rubygems_", HEX, 48),
    "nuget_key": _prefixed("oy2", LOWER_ALNUM, 43),
    "dockerhub_token": _prefixed("dckr_pat_", TOKEN, 27),
    "artifactory_token": _prefixed("AKCp", ALNUM, 69),
    "clojars_token": _prefixed("CLOJARS_", LOWER_ALNUM, 60),
    "jwt": _jwt,
    "bearer_token": _bearer,
    "basic_auth": _basic,
    "authorization_header": _authorization,
    "cookie_header": _cookie,
    "url_password": _url_password,
    "connection_string_password": _connection_string,
    "query_secret": _query,
    "env_secret": _env,
    "secret_assignment": _assignment,
    "password_phrase": _phrase,
    "generic_secret": _generic,
}

#: Key names whose values are planted bare (no recognizable format: only the name gives them away).
KEY_NAMES = (
    "api_key",
    "password",
    "client_secret",
    "Authorization",
    "X-Api-Key",
    "aws_secret_access_key",
    "dsn",
)


def sample(kind: str, rng: random.Random) -> Sample:
    text, secret = GENERATORS[kind](rng)
    return Sample(kind, text, secret)


def bare_secret(rng: random.Random, n: int = 28) -> str:
    """A value with no recognizable format (only a sensitive key name can catch it)."""
    return _with_digit(rng, ALNUM, n)


@dataclass
class Corpus:
    samples: list[Sample]
    #: key name -> bare value planted under that key
    keyed: dict[str, str]

    @property
    def secrets(self) -> list[str]:
        return [s.secret for s in self.samples] + list(self.keyed.values())

    def text(self, sep: str = "\n") -> str:
        """Every sample's text in one prompt-like string."""
        return sep.join(f"({s.kind}) {s.text} ." for s in self.samples)


def planted_corpus(seed: int = 0) -> Corpus:
    rng = random.Random(seed)
    return Corpus([sample(kind, rng) for kind in GENERATORS], {name: bare_secret(rng) for name in KEY_NAMES})


# -- scanning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    where: str
    secret: str

    def __str__(self) -> str:
        # Never print the whole secret, even in a failing test's output.
        return f"{self.where}: {self.secret[:6]}... ({len(self.secret)} chars)"


@functools.lru_cache(maxsize=4096)
def _variants(secret: str) -> frozenset[str]:
    """The forms in which a written secret can appear: as text, JSON-escaped (``json.dumps``, and
    ``<>&`` as ``json_script`` escapes them), HTML-escaped, percent-encoded (as in a link's query
    string) and CSV-quoted; and, for a secret with spaces, each of its words (a redaction that
    stopped at the first space would leave the rest)."""
    import html
    import json
    from urllib.parse import quote, quote_plus

    out = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret.replace("&", "\\u0026").replace("<", "\\u003C").replace(">", "\\u003E"),
        html.escape(secret),
        html.escape(secret, quote=False),
        quote(secret, safe=""),
        quote(secret, safe="/"),
        quote_plus(secret),
        secret.replace('"', '""'),
    }
    words = secret.split()
    if len(words) > 1:
        out.update(words)
    return frozenset(v for v in out if len(v) >= 8)


def scan_text(where: str, text: str, secrets: Iterable[str]) -> list[Finding]:
    return [Finding(where, s) for s in secrets if any(v in text for v in _variants(s))]


def scan_bytes(where: str, data: bytes, secrets: Iterable[str]) -> list[Finding]:
    return [Finding(where, s) for s in secrets if any(v.encode() in data for v in _variants(s))]


def scan_files(root: Path, secrets: Iterable[str]) -> list[Finding]:
    """Every file under ``root`` (journals, runtime log, sanitized copies, temp files)."""
    secrets = list(secrets)
    findings: list[Finding] = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            findings += scan_bytes(str(path), path.read_bytes(), secrets)
    return findings


def scan_database(secrets: Iterable[str], *, app_label: str = "ag2_logging") -> list[Finding]:
    """Every column of every row of every table of the app (read back through the ORM), and the
    SQLite database files themselves (including the WAL) when the database is SQLite."""
    import json

    from django.apps import apps
    from django.db import connection

    secrets = list(secrets)
    findings: list[Finding] = []
    for model in apps.get_app_config(app_label).get_models():
        table = model._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                findings += scan_text(f"table {table}", json.dumps(row, default=str), secrets)
    if connection.vendor == "sqlite":
        name = str(connection.settings_dict["NAME"])
        if connection.settings_dict.get("TEST", {}).get("NAME"):
            name = str(connection.settings_dict["TEST"]["NAME"])
        for suffix in ("", "-wal", "-journal"):
            path = Path(name + suffix)
            if path.exists():
                findings += scan_bytes(str(path), read_from_another_process(path), secrets)
    return findings


def read_from_another_process(path: Path) -> bytes:
    """The bytes of a live SQLite file, read by a child process (``cat``).

    Opening and closing any descriptor on the file in this process would drop every POSIX lock
    this process's SQLite connections hold on it (locks belong to the process and the inode, not
    to the descriptor). A worker process could then take the database as its alone, delete the
    ``-shm`` file under our open connections, and every later connection here fails with
    "disk I/O error" (SQLITE_IOERR_SHORT_READ), as the SQLite suite did after the secrets tests."""
    return subprocess.run(["cat", str(path)], capture_output=True, check=True).stdout


def scan_admin(client: Any, secrets: Iterable[str], *, app_label: str = "ag2_logging") -> list[Finding]:
    """The changelist and every change page of each admin registered for the app."""
    from django.contrib import admin
    from django.urls import reverse

    secrets = list(secrets)
    findings: list[Finding] = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != app_label:
            continue
        info = (model._meta.app_label, model._meta.model_name)
        url = reverse("admin:{}_{}_changelist".format(*info))
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        findings += scan_bytes(url, response.content, secrets)
        for pk in model_admin.get_queryset(_request(client)).values_list("pk", flat=True)[:200]:
            change = reverse("admin:{}_{}_change".format(*info), args=[pk])
            response = client.get(change)
            assert response.status_code == 200, (change, response.status_code)
            findings += scan_bytes(change, response.content, secrets)
    return findings


def _page(client: Any, url: str, *, csv_expected: bool = False) -> bytes:
    """GET ``url`` as the client's user; the body (streamed responses joined)."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    content_type = response.get("Content-Type", "")
    if csv_expected:
        assert content_type.startswith("text/csv"), (url, content_type)
    else:
        assert content_type.startswith("text/html"), (url, content_type)
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return bytes(response.content)


def scan_page(where: str, content: bytes, secrets: Iterable[str], *, is_csv: bool = False) -> list[Finding]:
    """A served page or download: searched as served, HTML-unescaped and percent-decoded, and
    (CSV) cell by cell as a spreadsheet reads it."""
    import csv
    import html
    import io
    from urllib.parse import unquote, unquote_plus

    text = content.decode("utf-8", errors="replace")
    forms = [text, html.unescape(text), unquote(text), unquote_plus(text)]
    if is_csv:
        cells = [cell.removeprefix("'") for row in csv.reader(io.StringIO(text)) for cell in row]
        forms.append("\n".join(cells))
    return [
        Finding(where, secret)
        for secret in secrets
        if any(variant in form for form in forms for variant in _variants(secret))
    ]


def covered_periods() -> list[tuple[dt.date, dt.date]]:
    """Report periods (UTC days, inclusive, each at most ``reports.MAX_DAYS`` long) that together
    cover every day on which something was recorded, and today (the reports' default period)."""
    from django.db.models import Max, Min

    from ag2_logging import reports
    from ag2_logging.models import AgentEvent, DailyRollup, LLMCall, Session, ToolCall

    days = {dt.datetime.now(dt.UTC).date()}
    for model, fields in (
        (Session, ("started_at", "ended_at")),
        (LLMCall, ("started_at", "ended_at")),
        (AgentEvent, ("created_at",)),
        (ToolCall, ("started_at", "ended_at")),
        (DailyRollup, ("day",)),
    ):
        for field in fields:
            bounds = model._default_manager.aggregate(low=Min(field), high=Max(field))
            for value in bounds.values():
                if isinstance(value, dt.datetime):
                    days.add(value.astimezone(dt.UTC).date())
                elif isinstance(value, dt.date):
                    days.add(value)
    first, last = min(days), max(days)
    periods = []
    while first <= last:
        end = min(first + dt.timedelta(days=reports.MAX_DAYS - 1), last)
        periods.append((first, end))
        first = end + dt.timedelta(days=1)
    return periods


def report_urls() -> list[str]:
    """Every report page (overview by model and by enterprise, each breakdown, the model
    comparison sampled and exact) for each period of ``covered_periods()``."""
    from urllib.parse import urlencode

    from django.urls import reverse

    from ag2_logging.reports import DIMENSIONS

    pages = [
        (reverse("admin:ag2_logging_report_overview"), {"stack": "model"}),
        (reverse("admin:ag2_logging_report_overview"), {"stack": "enterprise"}),
        *((reverse("admin:ag2_logging_report_breakdown", args=[slug]), {}) for slug in DIMENSIONS),
        (reverse("admin:ag2_logging_report_models"), {}),
        (reverse("admin:ag2_logging_report_models"), {"exact": "1"}),
    ]
    return [
        f"{url}?{urlencode({'start': start.isoformat(), 'end': end.isoformat(), **extra})}"
        for start, end in covered_periods()
        for url, extra in pages
    ]


def scan_exports(client: Any, secrets: Iterable[str], *, app_label: str = "ag2_logging") -> list[Finding]:
    """Every CSV the admin serves: each list's export (``<list>/export.csv``, unfiltered, so every
    row), each report page's ``?format=csv`` over periods covering the data, and each session
    timeline's ``?format=csv``."""
    from django.contrib import admin
    from django.urls import reverse

    from ag2_logging.admin import ExportViewMixin, TimelineViewMixin

    secrets = list(secrets)
    urls: list[str] = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != app_label:
            continue
        if isinstance(model_admin, ExportViewMixin):
            urls.append(reverse(f"admin:{app_label}_{model._meta.model_name}_export"))
        if isinstance(model_admin, TimelineViewMixin):
            urls += [f"{url}?format=csv" for url in _timeline_urls(model_admin, client)]
    assert urls, f"no CSV export registered for {app_label}"
    urls += [f"{url}&format=csv" for url in report_urls()]
    findings: list[Finding] = []
    for url in urls:
        findings += scan_page(url, _page(client, url, csv_expected=True), secrets, is_csv=True)
    return findings


def scan_reports(client: Any, secrets: Iterable[str], *, app_label: str = "ag2_logging") -> list[Finding]:
    """The admin index, the app index, every report page (HTML) over periods covering the data
    and the timeline of every session present."""
    from django.contrib import admin
    from django.urls import reverse

    from ag2_logging.admin import TimelineViewMixin

    secrets = list(secrets)
    urls = [reverse("admin:index"), reverse("admin:app_list", kwargs={"app_label": app_label})]
    urls += report_urls()
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label == app_label and isinstance(model_admin, TimelineViewMixin):
            urls += _timeline_urls(model_admin, client)
    findings: list[Finding] = []
    for url in urls:
        findings += scan_page(url, _page(client, url), secrets)
    return findings


def _timeline_urls(model_admin: Any, client: Any) -> list[str]:
    from django.urls import reverse

    opts = model_admin.model._meta
    name = f"admin:{opts.app_label}_{opts.model_name}_timeline"
    pks = model_admin.get_queryset(_request(client)).values_list("pk", flat=True)
    return [reverse(name, args=[pk]) for pk in pks]


def _request(client: Any) -> Any:
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = client.session and _user(client)
    return request


def _user(client: Any) -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser

    user_id = client.session.get("_auth_user_id")
    if user_id is None:
        return AnonymousUser()
    return get_user_model().objects.get(pk=user_id)


def scan_everything(
    secrets: Iterable[str],
    *,
    logs_dir: Path | None = None,
    client: Any = None,
    extra_dirs: Iterable[Path] = (),
) -> list[Finding]:
    """Files under ``logs_dir`` and ``extra_dirs``, every row of the app's tables and the SQLite
    files; with an admin ``client``, also every admin page, report page, timeline and CSV export
    (``scan_admin``, ``scan_reports``, ``scan_exports``)."""
    secrets = list(secrets)
    findings: list[Finding] = []
    for root in [*([logs_dir] if logs_dir else []), *extra_dirs]:
        findings += scan_files(root, secrets)
    findings += scan_database(secrets)
    if client is not None:
        findings += scan_admin(client, secrets)
        findings += scan_reports(client, secrets)
        findings += scan_exports(client, secrets)
    return findings
