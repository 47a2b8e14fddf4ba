"""Where things live in Firestore; both services address documents only through here.

sessions/{session_id}                  last_seq, active_turn, created_at, updated_at, expire_at
sessions/{session_id}/events/{seq:012} one stored protocol event (SessionEvent)
sessions/{session_id}/turns/t-{turn}   idempotency and progress of one turn
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud.firestore import Client, CollectionReference, DocumentReference

SESSIONS = "sessions"
EVENTS = "events"
TURNS = "turns"
DEPLOYMENTS = "deployments"
SEQ_WIDTH = 12


def session_ref(db: Client, session_id: str) -> DocumentReference:
    ref: DocumentReference = db.collection(SESSIONS).document(session_id)
    return ref


def events_ref(db: Client, session_id: str) -> CollectionReference:
    ref: CollectionReference = session_ref(db, session_id).collection(EVENTS)
    return ref


def event_doc_id(seq: int) -> str:
    # Zero-padded so that document ids sort like seq does in the console and in exports.
    return f"{seq:0{SEQ_WIDTH}d}"


def turn_ref(db: Client, session_id: str, turn_id: str) -> DocumentReference:
    # Prefixed: a client id such as "__x__" is a valid protocol id but a reserved document id.
    ref: DocumentReference = session_ref(db, session_id).collection(TURNS).document(f"t-{turn_id}")
    return ref


def deployment_ref(db: Client, session_id: str, deployment_id: str) -> DocumentReference:
    ref: DocumentReference = (
        session_ref(db, session_id).collection(DEPLOYMENTS).document(deployment_id)
    )
    return ref
