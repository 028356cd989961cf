"""The demo knowledge base: what Switchboard is and how to use it, written to be spoken.

The demo agent (switchboard.bootstrap) answers from it with the retrieval engine, so a newcomer who calls
``sip:demo@…`` after ``make run`` can ask what Switchboard does and hear an answer, with no account
anywhere. Each entry is one source; its first sentence should stand on its own when spoken.
"""

from __future__ import annotations

DEMO_KB_NAME = "Switchboard demo"

DEMO_TEXTS: list[dict[str, str]] = [
    {"title": "What Switchboard is", "text": (
        "Switchboard is a self-hosted voice AI telephony server. It lets AI agents answer and place real phone "
        "calls over SIP, through carrier trunks, office phone systems and SIP addresses. Each call runs through "
        "speech recognition, a response engine and speech synthesis, and everything is kept in PostgreSQL.")},
    {"title": "What Switchboard does", "text": (
        "Switchboard connects phone calls to AI voice agents. When someone calls, an agent greets the caller, "
        "listens, understands the question and answers out loud, and it can transfer the call, press keys or "
        "hang up. It can also call people for you, one at a time or in batches.")},
    {"title": "Getting started: how to start Switchboard", "text": (
        "To get started with Switchboard, run make run on a Debian machine. It installs what it needs, starts an embedded "
        "PostgreSQL database and prints the address of the API, the documentation and a demo API key. "
        "Then call the demo agent from any softphone at sip colon demo at your server's address.")},
    {"title": "Who you are talking to: the demo agent", "text": (
        "You are talking to the Switchboard demo agent, a voice AI that runs on this server. It answers calls to the SIP address demo at your "
        "Switchboard server, on port 5060 by default. It uses the local voice and answers questions about "
        "Switchboard from its knowledge base.")},
    {"title": "Trunks", "text": (
        "A trunk connects Switchboard to a phone carrier or a PBX over SIP. You create a trunk with its host, "
        "port, transport and credentials, and Switchboard registers with the carrier if you ask it to. "
        "Trunk passwords are encrypted at rest and never returned by the API.")},
    {"title": "Phone numbers", "text": (
        "Phone numbers route incoming calls to agents. Each number belongs to a trunk and points to an agent, "
        "and numbers are stored in the international E.164 format. When a call arrives for a number, "
        "Switchboard answers it with that number's agent.")},
    {"title": "Agents", "text": (
        "An agent is the voice that talks to callers. You choose its voice, language, greeting, response "
        "engine, speech recognition, tools and knowledge bases. An agent can end calls, transfer them, send "
        "touch tones and look things up in its knowledge bases.")},
    {"title": "Outbound calls", "text": (
        "Switchboard can place outbound calls. You ask the API to call one number or a list of up to a "
        "thousand numbers with a given agent, and it dials them through your trunks within each trunk's "
        "limits. Every call keeps its status, its transcript and its recording.")},
    {"title": "Recordings and transcripts", "text": (
        "Every call can be recorded and transcribed. Recordings are stereo files, with the caller on one "
        "channel and the agent on the other, and they are written as the call goes on, so nothing is lost "
        "in a crash. Transcripts keep every turn of the conversation.")},
    {"title": "The API", "text": (
        "Switchboard has a REST API for agents, trunks, numbers, calls, recordings, knowledge bases and keys. "
        "Each API key belongs to one organization and sees only that organization's data. The interactive "
        "documentation is served by the server itself at slash docs.")},
    {"title": "Local voice", "text": (
        "Switchboard works without any cloud account. Out of the box it speaks with the local flite voice, "
        "understands speech with the local pocketsphinx recognizer and answers from knowledge bases, so "
        "everything runs on your own machine.")},
    {"title": "Cloud providers", "text": (
        "For production voices and smarter answers, Switchboard uses cloud providers. It supports OpenAI, "
        "Groq and any OpenAI compatible language model, Deepgram and OpenAI for speech recognition, and "
        "OpenAI and ElevenLabs for speech. Each organization brings its own provider keys.")},
    {"title": "Knowledge bases", "text": (
        "Knowledge bases let agents answer questions from your own content. You add texts and web pages, and "
        "Switchboard splits them into passages, indexes them with a local embedding model and finds the best "
        "match for each question. Web pages can be refreshed every twelve hours.")},
    {"title": "Self-hosting and privacy", "text": (
        "Switchboard is self-hosted, so your calls and data stay on your servers. It needs no account with us, "
        "and it runs on one machine for a start or on several workers that share PostgreSQL as you grow.")},
    {"title": "Price and license: what does it cost", "text": (
        "Switchboard costs nothing: it is open source under the Apache 2.0 license and free to run. You only "
        "pay your phone carrier for calls, and any cloud providers you choose to use.")},
]

# What a caller is expected to ask: the local recogniser (pocketsphinx) is reliable on expected phrases.
DEMO_PHRASES: list[str] = [
    "what does switchboard do", "what is switchboard", "tell me about switchboard", "how do i get started",
    "how do i start switchboard", "what is a trunk", "how do phone numbers work", "what is an agent",
    "can it make outbound calls", "are calls recorded", "is there an api", "does it work without the cloud",
    "which cloud providers are supported", "what are knowledge bases", "is it self hosted",
    "is switchboard free", "how much does switchboard cost", "who am i talking to",
]
