"""The tables. Secrets (invite tokens, OAuth states) are stored only as SHA-256 hashes;
access tokens only encrypted, or not at all (see `bot.crypto`)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every engine (SQLite hands back naive ones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = False, index: bool = False) -> sa.Column[datetime]:
    return sa.Column(UTCDateTime(), nullable=nullable, index=index)


# Row ids are INTEGER columns, 32-bit on PostgreSQL: a larger number (typed by a person or carried
# in button data) is never a row's id, and handing it to the database would fail.
MAX_ROW_ID = 2**31 - 1


def _bigint(nullable: bool = False, index: bool = False) -> sa.Column[int]:
    # Telegram ids exceed 32 bits.
    return sa.Column(sa.BigInteger(), nullable=nullable, index=index)


class InviteStatus(StrEnum):
    PENDING = "pending"  # created, link not opened yet
    OPENED = "opened"  # bound to an influencer, going through the checks
    LOGIN_STARTED = "login_started"  # login button handed out
    FAILED = "failed"  # the last login did not connect; a retry is offered
    CONNECTED = "connected"
    REVOKED = "revoked"


class LoginPath(StrEnum):
    """The way an influencer connects: Facebook Login (a Page linked to the Instagram account)
    or Instagram Login (the account alone, through a second Meta app; issue 13)."""

    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"


class BrandPaths(StrEnum):
    """Which ways in a brand allows its influencers (set by an admin with /paths)."""

    BOTH = "both"  # the default; Instagram only where INSTAGRAM_APP_ID is configured
    FACEBOOK = "facebook"  # the Page is a business rule for this brand
    INSTAGRAM = "instagram"


class Step(StrEnum):
    """Where the influencer is in the guided flow; stored, so it survives restarts."""

    WELCOME = "welcome"
    PATH = "path"  # which way in: is the account linked to a Facebook Page you manage?
    IG_PROFESSIONAL = "ig_professional"  # Instagram path: a Business or Creator account?
    PAGE_PUBLIC = "page_public"
    PAGE_LINKED = "page_linked"
    LOGIN = "login"
    DONE = "done"


class Brand(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)  # what influencers see as the one asking
    team_chat_id: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    # The platform's webhook (issue 12): where every change of the brand's invitations is POSTed,
    # and the signing secret, sealed with TOKEN_ENCRYPTION_KEYS (shown once when set).
    webhook_url: str | None = Field(default=None, max_length=2048)
    webhook_secret_sealed: str | None = Field(
        default=None, sa_column=sa.Column(sa.Text(), nullable=True)
    )
    webhook_set_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # A BrandPaths value: which ways in its influencers may use.
    login_paths: str = Field(
        default=BrandPaths.BOTH,
        sa_column=sa.Column(sa.String(16), nullable=False, server_default=BrandPaths.BOTH.value),
    )


class Manager(SQLModel, table=True):
    """A Telegram user who manages one brand's invitations."""

    telegram_id: int = Field(
        sa_column=sa.Column(sa.BigInteger(), primary_key=True, autoincrement=False)
    )
    brand_id: int = Field(foreign_key="brand.id", index=True)
    name: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class ManagerLink(SQLModel, table=True):
    """A one-time link that makes whoever opens it a manager of a brand."""

    __tablename__ = "manager_link"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    brand_id: int = Field(foreign_key="brand.id", index=True)
    created_by: int = Field(sa_column=_bigint())
    expires_at: datetime = Field(sa_column=_ts())
    used_by: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Person(SQLModel, table=True):
    telegram_id: int = Field(
        sa_column=sa.Column(sa.BigInteger(), primary_key=True, autoincrement=False)
    )
    language: str | None = Field(default=None, max_length=8)  # chosen with /language
    telegram_language: str | None = Field(default=None, max_length=16)  # last seen language_code
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Invitation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    handle: str = Field(max_length=30, index=True)
    created_by: int = Field(sa_column=_bigint(index=True))
    inviter_name: str = Field(max_length=128)
    status: str = Field(default=InviteStatus.PENDING, max_length=16, index=True)
    step: str = Field(default=Step.WELCOME, max_length=16)
    telegram_user_id: int | None = Field(default=None, sa_column=_bigint(nullable=True, index=True))
    last_reason: str | None = Field(default=None, max_length=32)
    expires_at: datetime = Field(sa_column=_ts())
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    brand_id: int | None = Field(default=None, foreign_key="brand.id", index=True)
    note: str | None = Field(default=None, max_length=256)
    # The link token, encrypted (only with TOKEN_ENCRYPTION_KEYS), to show the link again.
    token_sealed: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    # The manager's message answering the invitation, edited in place as the influencer moves.
    card_chat_id: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    card_message_id: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    card_is_photo: bool = False
    reminded_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    stalled_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # When free text last got the whole current step repeated (free text mostly gets one line).
    step_repeated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # The message in the influencer's chat carrying the current step's buttons (a check's
    # question or its instructions); its buttons go when the step is shown again.
    step_message_id: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    # The way in the influencer is on (a LoginPath); None until chosen (or only one is open).
    path: str | None = Field(default=None, max_length=16)


class LoginAttempt(SQLModel, table=True):
    __tablename__ = "login_attempt"

    id: int | None = Field(default=None, primary_key=True)
    invitation_id: int = Field(foreign_key="invitation.id", index=True)
    telegram_user_id: int = Field(sa_column=_bigint())
    state_hash: str = Field(max_length=64, unique=True)
    rerequest: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())
    used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    outcome: str | None = Field(default=None, max_length=32)
    # A newer state was issued for the invitation: this one is refused from then on.
    superseded_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # The state itself, sealed with a key derived from the app secret, while it is live (so
    # the same button can be shown again instead of minting a state per message).
    state_sealed: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    # The message carrying its login button (its button is taken off when a newer one comes).
    button_chat_id: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    button_message_id: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    # SHA-256 of the cookie of the browser that opened /oauth/start first.
    browser_hash: str | None = Field(default=None, max_length=64)
    # A redirect that came back to another browser waits for a confirmation on the page: the
    # hash of its one-time confirmation token, and the redirect's parameters, sealed.
    confirm_hash: str | None = Field(default=None, max_length=64, index=True)
    pending_sealed: str | None = Field(
        default=None, sa_column=sa.Column(sa.Text(), nullable=True)
    )
    # A login that renews the invitation's kept connection (issue 11: the Renew button): handed
    # out while the invitation is connected, and it keeps the same Page and Instagram account.
    renewal: bool = False
    # A LoginPath: which Meta app's window this state was handed out for.
    path: str = Field(
        default=LoginPath.FACEBOOK,
        sa_column=sa.Column(sa.String(16), nullable=False, server_default=LoginPath.FACEBOOK.value),
    )


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"  # withdrawn by a manager (/revoke)
    DISCONNECTED = "disconnected"  # the person removed the app at Facebook (deauthorize)


class Connection(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    invitation_id: int = Field(foreign_key="invitation.id", unique=True)
    facebook_user_id: str = Field(max_length=64, index=True)
    page_id: str = Field(max_length=64)
    page_name: str = Field(max_length=256)
    instagram_id: str = Field(max_length=64)
    instagram_username: str = Field(max_length=30)
    followers_count: int | None = None
    permissions: str = Field(max_length=1024)  # comma-separated, as granted
    token_encrypted: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    token_expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    data_access_expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    status: str = Field(default=ConnectionStatus.ACTIVE, max_length=16)  # a ConnectionStatus
    ended_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # --- its life after the login (issue 11; `bot.health`, `bot.upkeep`) ---
    # The connected Page's access token (from the long-lived user token: it does not expire
    # until a password change, a lost role or the app's removal), encrypted like the user token.
    page_token_encrypted: str | None = Field(
        default=None, sa_column=sa.Column(sa.Text(), nullable=True)
    )
    health: str = Field(default="healthy", max_length=16)  # a bot.health.HealthState
    health_reason: str | None = Field(default=None, max_length=32)  # a bot.health.HealthReason
    health_changed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    checked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # When the next check is due; a check in progress pushes it ahead (its claim), so two
    # replicas never check the same connection in one round. None: never checked (due now).
    next_check_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True, index=True))
    # The smallest renewal lead (days before access ends: 14, then 3) the influencer was asked
    # at, so each stage is asked once; None after a renewal.
    renewal_stage: int | None = None
    renewed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # A LoginPath. Instagram Login connections have no Facebook user and no Page (those fields
    # are empty); their token is Instagram's long-lived user token, refreshed by the health job.
    path: str = Field(
        default=LoginPath.FACEBOOK,
        sa_column=sa.Column(sa.String(16), nullable=False, server_default=LoginPath.FACEBOOK.value),
    )


class ProfileSnapshot(SQLModel, table=True):
    """What the brand sees of a connected account (issue 12): the profile, 30 days of insights,
    demographics and recent posts, read through the Page token and cached here (Instagram's own
    figures lag up to 48 hours). `data` is the whole read as JSON (`bot.insights.Profile`); the
    headline figures are columns too, for /export and the read API. Erased with the connection."""

    __tablename__ = "profile_snapshot"

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connection.id", unique=True)
    fetched_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    followers_count: int | None = None
    reach_30d: int | None = None
    # Per mille of followers (interactions per post ÷ followers × 1000), None without posts.
    engagement_per_mille: int | None = None
    data: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))


class WebhookDelivery(SQLModel, table=True):
    """One change POSTed to a brand's webhook (issue 12), written in the transaction of the event
    it reports and delivered by the leader's webhook worker: at least once, in order per
    invitation, retried with backoff for a day."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (sa.Index("ix_webhook_delivery_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=40, unique=True)  # the payload's id ("evt_…")
    brand_id: int = Field(foreign_key="brand.id", index=True)
    invitation_id: int | None = Field(default=None, foreign_key="invitation.id", index=True)
    type: str = Field(max_length=32)  # "connection.connected", …
    body: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))  # the JSON POSTed
    status: str = Field(default="pending", max_length=12)  # pending, delivered, failed
    attempts: int = 0
    due_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    delivered_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=200)


class ApiKey(SQLModel, table=True):
    """A brand's key for the read API (issue 12), stored only as its SHA-256 hash; `prefix` (the
    key's first characters) names it in lists."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    brand_id: int = Field(foreign_key="brand.id", index=True)
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    label: str | None = Field(default=None, max_length=64)
    created_by: int = Field(sa_column=_bigint())
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    last_used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Revocation(SQLModel, table=True):
    """An access token whose withdrawal at Facebook (DELETE /me/permissions) is not confirmed
    yet. It is kept, encrypted, only until Facebook confirms (or says the token is already
    invalid), and retried until then; then the row and the token are deleted."""

    id: int | None = Field(default=None, primary_key=True)
    invitation_id: int | None = Field(default=None, foreign_key="invitation.id", index=True)
    # The manager who withdrew the invitation (told when Facebook confirms); None after /forget.
    requested_by: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    token_encrypted: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    attempts: int = 0
    next_try_at: datetime = Field(default_factory=utcnow, sa_column=_ts(index=True))
    last_error: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class DeletionRequest(SQLModel, table=True):
    """Meta's data deletion callback: what was asked, and whether it is done."""

    __tablename__ = "deletion_request"
    # One request per signed_request: the same one again (a replay) finds the first.
    __table_args__ = (
        sa.Index("ix_deletion_request_replay", "facebook_user_id", "issued_at", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    confirmation_code: str = Field(max_length=64, unique=True)
    facebook_user_id: str = Field(max_length=64, index=True)
    # The signed_request's issued_at (Unix seconds); None for requests from before it was kept.
    issued_at: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    status: str = Field(default="received", max_length=16)  # received, completed
    deleted_connections: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    completed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class InvitationEvent(SQLModel, table=True):
    __tablename__ = "invitation_event"

    id: int | None = Field(default=None, primary_key=True)
    invitation_id: int = Field(foreign_key="invitation.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    kind: str = Field(max_length=32)
    status: str = Field(max_length=16)  # the invitation's status after the event
    detail: str | None = Field(default=None, max_length=256)
    # A login result's particulars as compact JSON (which Page, which account, which
    # permissions, followers), for the manager's timeline; erased with the connection's data.
    facts: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))


class TelegramUpdate(SQLModel, table=True):
    """Update ids already taken for processing: Telegram may deliver one twice (webhook retries),
    possibly to two replicas."""

    __tablename__ = "telegram_update"

    update_id: int = Field(
        sa_column=sa.Column(sa.BigInteger(), primary_key=True, autoincrement=False)
    )
    received_at: datetime = Field(default_factory=utcnow, sa_column=_ts(index=True))


class OutboxKind(StrEnum):
    SEND = "send"  # one message
    NOTICE = "notice"  # a message that may be combined with other notices to the same chat
    EDIT = "edit"  # replace the text of a message sent earlier (only the newest edit counts)
    EDIT_CAPTION = "caption"  # the same for a photo's caption
    EDIT_MARKUP = "markup"  # take the buttons off a message sent earlier (text unchanged)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    SUPERSEDED = "superseded"  # a newer edit of the same message replaced it
    UNREACHABLE = "unreachable"  # 403: blocked, or never started the bot
    FAILED = "failed"  # refused by Telegram (400) or retries exhausted
    DROPPED = "dropped"  # its audience changed: no longer a manager, no longer the team chat


class OutboxAudience(StrEnum):
    """Who a message about a brand is for, checked again when it is delivered."""

    MANAGER = "manager"  # `manager_id` is a manager of `brand_id` (their notices, their card)
    TEAM = "team"  # `chat_id` is the team chat of `brand_id`


class OutboxMessage(SQLModel, table=True):
    """A message caused by an event, written in the event's transaction and delivered by the
    delivery worker: nothing committed is lost, nothing is sent twice."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_column=_bigint())
    kind: str = Field(max_length=8)
    text: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    keyboard: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    edit_message_id: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    invitation_id: int | None = Field(default=None, foreign_key="invitation.id", index=True)
    status: str = Field(default=OutboxStatus.PENDING, max_length=12)
    attempts: int = 0
    due_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    sent_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    message_id: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    last_error: str | None = Field(default=None, max_length=200)
    # Messages to a brand's people (None: to an influencer, or to whoever asked): delivered only
    # while the audience still holds (see OutboxAudience).
    audience: str | None = Field(default=None, max_length=8)
    brand_id: int | None = Field(default=None, sa_column=sa.Column(sa.Integer(), nullable=True))
    manager_id: int | None = Field(default=None, sa_column=_bigint(nullable=True))


def access_ends(connection: Connection) -> datetime | None:
    """When the connection's access ends without a renewal. With a Page token kept, the brand's
    reads use it, and it does not expire: what ends is data access (90 days after the last
    login). Without one (older connections), the earlier of the user token's and data access's
    expiry (as `bot.health.judge` reckons it)."""
    if connection.page_token_encrypted:
        return connection.data_access_expires_at
    moments = [
        m for m in (connection.token_expires_at, connection.data_access_expires_at) if m is not None
    ]
    return min(moments, default=None)
