"""Per-call client set-up stays off the event loop's budget: provider clients share one TLS context and the
SDKs are imported at start-up (agents.providers.tls, agents.providers.preload)."""

import ssl
import subprocess
import sys

import pytest

from agents.netguard import guarded_httpx_client
from agents.providers.deepgram_stt import DeepgramSTT
from agents.providers.elevenlabs_tts import ElevenLabsTTS
from agents.providers.openai_llm import OpenAILLM
from agents.providers.openai_stt import OpenAISTT
from agents.providers.openai_tts import OpenAITTS
from agents.providers.tls import ssl_context


def test_a_calls_provider_clients_build_no_tls_context_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    ssl_context()  # built once (at start-up, by preload)
    made: list[object] = []
    real = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        made.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    clients = [DeepgramSTT(api_key="k", base_url="https://stt.example"), ElevenLabsTTS(api_key="k"),
               OpenAILLM(api_key="k", model="m"), OpenAISTT(api_key="k"), OpenAITTS(api_key="k"),
               OpenAILLM(api_key="k", model="m", base_url="https://tenant.example/v1",
                         http_client=guarded_httpx_client(allow_private=False))]
    assert made == [], "a provider client loaded the CA bundle itself (30-55 ms of the event loop each)"
    assert len(clients) == 6


def test_preload_imports_every_cloud_sdk_a_call_would_import() -> None:
    code = (
        "import sys\n"
        "from agents.providers.preload import preload\n"
        "preload()\n"
        "before = set(sys.modules)\n"
        "from agents.providers.deepgram_stt import DeepgramSTT\n"
        "from agents.providers.elevenlabs_tts import ElevenLabsTTS\n"
        "from agents.providers.openai_llm import OpenAILLM\n"
        "d = DeepgramSTT(api_key='k'); d.client.listen.v1\n"
        "e = ElevenLabsTTS(api_key='k'); e.client.text_to_speech\n"
        "o = OpenAILLM(api_key='k', model='m'); o.client.chat.completions\n"
        "new = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in\n"
        "             ('deepgram', 'elevenlabs', 'openai', 'httpx', 'websockets', 'pydantic'))\n"
        "print(new)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", f"imported at the first call despite preload: {out.stdout}"
