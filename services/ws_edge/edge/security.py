"""The security headers of every HTTP response the edge sends (the page above all).

The page runs only its own modules (`script-src 'self'`); what sign-in truly needs is added:
Firebase's popup sign-in loads Google's API script and frames the auth domain's handler, and
the SDK talks to the Identity Toolkit and Secure Token APIs, or locally to the Auth emulator.
"""

from __future__ import annotations

from .settings import EdgeSettings

GOOGLE_APIS = ("https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com")


def content_security_policy(settings: EdgeSettings) -> str:
    emulator = f"http://{settings.auth_emulator_host}" if settings.auth_emulator_host else None
    script = ["'self'"]
    connect = ["'self'"]
    frames: list[str] = []
    if settings.auth_mode == "firebase":
        script.append("https://apis.google.com")
        connect.extend(GOOGLE_APIS)
        if settings.firebase_auth_domain:
            frames.append(f"https://{settings.firebase_auth_domain}")
        if emulator:
            connect.append(emulator)
            frames.append(emulator)
    directives = {
        "default-src": ["'self'"],
        "script-src": script,
        # ws(s) to this same host: 'self' covers it in current browsers; spelled out for older.
        "connect-src": [*connect, "ws:", "wss:"],
        "img-src": ["'self'", "data:", "https://*.googleusercontent.com"],
        "style-src": ["'self'"],
        "font-src": ["'self'"],
        "frame-src": frames or ["'none'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def security_headers(settings: EdgeSettings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "X-Frame-Options": "DENY",
        # Popup sign-in needs to talk back to its opener.
        "Cross-Origin-Opener-Policy": "same-origin-allow-popups",
    }
