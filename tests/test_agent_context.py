"""The X-HITL-* headers: taken off the request, kept as the approval's context."""

from __future__ import annotations

from mitmproxy import http

from proxy_addon.agent_context import take_context


def test_the_trigger_is_taken_off_cut_and_a_link_s_secret_masked() -> None:
    headers = http.Headers([
        (b"X-HITL-Trigger", b"https://u:pw@desk.acme.test/t/9?access_token=s3cret#frag"),
        (b"x-hitl-reason", b"asked by the customer"), (b"X-HITL-Unknown", b"dropped"),
        (b"Accept", b"application/json")])
    context = take_context(headers)
    assert context.trigger == "https://***@desk.acme.test/t/9?access_token=***#***"
    assert context.reason == "asked by the customer"
    assert list(headers.keys()) == ["Accept"]  # every X-HITL-* header goes, known or not
    text = take_context(http.Headers([(b"X-HITL-Trigger", b"weekly churn review " * 200)]))
    assert text.trigger is not None and len(text.trigger) == 2000
    assert take_context(http.Headers([])).trigger is None


def test_secrets_in_a_trigger_of_free_text_are_masked_wherever_they_sit() -> None:
    """A trigger is free text around links: every URL in it is masked as a URL is, and
    secret-looking pairs too; a header given twice is taken whole and removed whole."""
    from mitmproxy import http

    from proxy_addon.agent_context import take_context

    headers = http.Headers([
        (b"X-HITL-Trigger", b"see https://u:pw@ex.com/a?token=abc1"),
        (b"x-hitl-trigger", b"Bearer sk_live_abc2 password=abc3 api_key: abc4"),
        (b"X-HITL-Reason", b"tidy up")])
    context = take_context(headers)
    assert context.trigger is not None and context.reason == "tidy up"
    assert not any(secret in context.trigger for secret in ("pw", "abc1", "abc2", "abc3",
                                                            "abc4"))
    assert context.trigger.startswith("see https://***@ex.com/a?token=***")
    assert list(headers.keys()) == []
    plain = take_context(http.Headers([(b"X-HITL-Trigger", b"https://ex.com/tickets/42")]))
    assert plain.trigger == "https://ex.com/tickets/42"
