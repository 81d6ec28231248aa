// The idiomatic Kotlin face of Carry: a thin layer over the generated
// `health.carry.ffi` bindings. Pure Kotlin/JVM (no android.* here), so the desktop
// tests in tests/kotlin compile and exercise exactly this file.
package health.carry

import health.carry.ffi.AuditCheck
import health.carry.ffi.AuditEntry
import health.carry.ffi.Basis
import health.carry.ffi.Category
import health.carry.ffi.Contact
import health.carry.ffi.CreatedShareLink
import health.carry.ffi.Dependant
import health.carry.ffi.DependantNotice
import health.carry.ffi.Device
import health.carry.ffi.DocumentFile
import health.carry.ffi.EmergencyCard
import health.carry.ffi.Events
import health.carry.ffi.ExchangeReport
import health.carry.ffi.ExportScope
import health.carry.ffi.GrantInfo
import health.carry.ffi.ImportProgress
import health.carry.ffi.ImportReport
import health.carry.ffi.Invite
import health.carry.ffi.KeyStore
import health.carry.ffi.MoveIn
import health.carry.ffi.MoveOut
import health.carry.ffi.MyIdentity
import health.carry.ffi.NewContact
import health.carry.ffi.NewDependant
import health.carry.ffi.NewGrant
import health.carry.ffi.NewShareLink
import health.carry.ffi.NewSource
import health.carry.ffi.OutboxEntry
import health.carry.ffi.Person
import health.carry.ffi.Preferences
import health.carry.ffi.PrefsChange
import health.carry.ffi.HoldAction
import health.carry.ffi.PendingContribution
import health.carry.ffi.Profile
import health.carry.ffi.PushRule
import health.carry.ffi.ProfileInfo
import health.carry.ffi.QrCode
import health.carry.ffi.Reading
import health.carry.ffi.ReceivedProfile
import health.carry.ffi.RecordStats
import health.carry.ffi.ResourceDetail
import health.carry.ffi.Role
import health.carry.ffi.Scope
import health.carry.ffi.ShareAccess
import health.carry.ffi.SharingStopped
import health.carry.ffi.BackupReport
import health.carry.ffi.BackupStatus
import health.carry.ffi.CodeGroupAnswer
import health.carry.ffi.ShareLinkInfo
import health.carry.ffi.SharePreset
import health.carry.ffi.SourceInfo
import health.carry.ffi.SyncProgress
import health.carry.ffi.SyncReport
import health.carry.ffi.TimelineItem
import health.carry.ffi.TimelinePage
import health.carry.ffi.TimelineQuery
import health.carry.ffi.TrendSeries
import health.carry.ffi.parseReading
import java.io.File
import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableSharedFlow
import kotlinx.coroutines.flow.SharedFlow
import kotlinx.coroutines.flow.asSharedFlow
import kotlinx.coroutines.flow.flow

/**
 * A person's health record, encrypted on this device.
 *
 * Open one with [open] or make one with [create]; close it with [close] or `use {}`.
 * Every suspend function is main-safe (the work runs on Rust's own threads) and
 * cancellable: a cancelled [importFile] keeps none of its file, a cancelled [sync]
 * keeps what it had fetched. Sharing (invites, people, grants, records shared with
 * this profile, the relay [exchange]) is here too, and so are links for showing a
 * clinician ([createShareLink], [emergencyCard]; a clinician's app opens them with
 * `health.carry.ffi.openShareLink`). Failures are [health.carry.ffi.CarryException]s;
 * [reasonOf] gives their plain-language text.
 * Calls after [close] throw [IllegalStateException].
 */
class CarryProfile private constructor(
    private val profile: Profile,
    private val relay: ProgressRelay,
) : AutoCloseable {

    companion object {
        /** Create a profile named [name] in [folder] (made if missing). */
        suspend fun create(folder: File, name: String, keyStore: KeyStore): CarryProfile {
            val relay = ProgressRelay()
            return CarryProfile(Profile.create(folder.path, name, keyStore, relay), relay)
        }

        /** Open the profile in [folder]; `CarryException.WrongKey` if [keyStore] cannot. */
        suspend fun open(folder: File, keyStore: KeyStore): CarryProfile {
            val relay = ProgressRelay()
            return CarryProfile(Profile.open(folder.path, keyStore, relay), relay)
        }

        /**
         * On the new phone, after `health.carry.ffi.startMoveIn(code)` and showing its
         * `digits()`: receive the profile [move] brings into the empty [folder], its
         * key wrapped by [keyStore], waiting up to [waitSeconds]. Same identity,
         * people, grants and audit log; sign in to each provider again.
         * `CarryException.Denied` if the old phone stopped the move (other digits were
         * typed there), `Expired` if nothing came in time, `InvalidInput` if [move]
         * was already finished. A second device joining the profile finishes the
         * same way, with the `MoveIn` from `health.carry.ffi.startJoin(code, name)`.
         */
        suspend fun finishMoveIn(
            move: MoveIn,
            folder: File,
            keyStore: KeyStore,
            waitSeconds: Int = 600,
        ): CarryProfile {
            require(waitSeconds > 0) { "waitSeconds must be positive" }
            val relay = ProgressRelay()
            return CarryProfile(move.finish(folder.path, keyStore, waitSeconds.toUInt(), relay), relay)
        }
    }

    /**
     * Progress of every import on this profile. Emitted from a Rust thread; collect it
     * from any dispatcher. Slow collectors miss intermediate values, never the thread.
     */
    val importProgress: SharedFlow<ImportProgress> = relay.flow.asSharedFlow()

    /**
     * Progress of every sync on this profile: each state a source enters, and each
     * page fetched. Emitted from a Rust thread, like [importProgress].
     */
    val syncProgress: SharedFlow<SyncProgress> = relay.syncFlow.asSharedFlow()

    /**
     * Everyone who gains access to this record from now on: a new grant made with
     * [grant], or new access found by an [exchange]; not a change to a grant someone
     * already held. Emitted from a Rust thread once the change is stored; collect it
     * before granting, since a flow with no collector keeps nothing.
     */
    val newAccess: SharedFlow<NewAccess> = relay.accessFlow.asSharedFlow()

    /**
     * After each [sync], when a backup is overdue (none yet, or the last over a week
     * old): the last backup's time in Unix seconds, or null if there never was one.
     * A good moment to remind the person ([backupStatus] has the details).
     */
    val backupOverdue: SharedFlow<Long?> = relay.backupOverdueFlow.asSharedFlow()

    /** The generated object, for anything this layer does not cover. */
    val ffi: Profile get() = profile

    val isLocked: Boolean get() = profile.isLocked()

    /** Close the vault and wipe its key; calls fail with `Locked` until [unlock]. */
    fun lock() = profile.lock()

    suspend fun unlock(keyStore: KeyStore) = profile.unlock(keyStore)

    /**
     * Close the vault's files but keep the key, e.g. from `onStop` before background
     * work is frozen; the next call (or [resume]) reopens them.
     */
    fun pause() = profile.pause()

    /** Reopen the vault's files after [pause]. */
    suspend fun resume() = profile.resume()

    suspend fun info(): ProfileInfo = profile.info()

    suspend fun stats(): RecordStats = profile.stats()

    /** Import a FHIR R4 file (resource, Bundle or NDJSON). Progress: [importProgress]. */
    suspend fun importFile(file: File): ImportReport = profile.importFile(file.path)

    /** One page of the timeline, newest first. */
    suspend fun timeline(query: TimelineQuery = TimelineQuery()): TimelinePage =
        profile.timeline(query)

    /**
     * The whole timeline for [query], one page per emission, newest first, following
     * the cursors to the end. Cold: each collection starts again at [query]'s cursor.
     */
    fun timelinePages(query: TimelineQuery = TimelineQuery()): Flow<List<TimelineItem>> = flow {
        var cursor = query.cursor
        do {
            val page = profile.timeline(query.copy(cursor = cursor))
            if (page.items.isNotEmpty()) emit(page.items)
            cursor = page.nextCursor
        } while (cursor != null)
    }

    /** Full-text search: the best matches, newest first; [limit] must be positive when given. */
    suspend fun search(text: String, limit: Int? = null): List<TimelineItem> {
        require(limit == null || limit > 0) { "limit must be positive" }
        return profile.search(text, limit?.toUInt())
    }

    suspend fun show(id: Long): ResourceDetail = profile.show(id)

    /** Appointments still to come, soonest first. */
    suspend fun appointments(): List<TimelineItem> = profile.appointments()

    /** A result's values over time, newest first: "hba1c", "bp", "weight", a LOINC code… */
    suspend fun trend(concept: String): TrendSeries = profile.trend(concept)

    /** The people to contact: the ones the person added first, then those providers' records name. */
    suspend fun contacts(): List<Contact> = profile.contacts()

    /** Add someone to contact: kept in the record, on the emergency card, never sent to a provider. */
    suspend fun addContact(contact: NewContact): Contact = profile.addContact(contact)

    /** Remove a contact the person added (its [Contact.item]). */
    suspend fun removeContact(item: Long) = profile.removeContact(item)

    /** Keep a PDF or an image (JPEG, PNG, HEIC; at most 20 MB) as a document in the record. */
    suspend fun attachDocument(bytes: ByteArray, title: String, contentType: String? = null): TimelineItem =
        profile.attachDocument(bytes, title, contentType)

    /** The file of a document the record holds: hand it to the platform's viewer. */
    suspend fun documentFile(id: Long): DocumentFile = profile.documentFile(id)

    suspend fun addReading(reading: Reading, note: String? = null, takenAt: Long? = null): TimelineItem =
        profile.addReading(reading, note, takenAt)

    /**
     * Record a reading as typed: `addReading("weight", "72.5kg")`, `("bp", "120/80")`.
     * `CarryException.InvalidInput` if it does not parse or is implausible.
     */
    suspend fun addReading(kind: String, value: String, note: String? = null, takenAt: Long? = null): TimelineItem =
        profile.addReading(parseReading(kind, value), note, takenAt)

    /**
     * Delete the person's reading [id]; one that reached a provider is taken back there
     * (entered-in-error) at the next [sync]. Returns how many providers that is.
     */
    suspend fun deleteReading(id: Long): ULong = profile.deleteReading(id)

    /** Replace the person's reading [id] with [reading]: the old one deleted, the new one sent on. */
    suspend fun amendReading(id: Long, reading: Reading, note: String? = null, takenAt: Long? = null): TimelineItem =
        profile.amendReading(id, reading, note, takenAt)

    /** Write [scope] of the record to [file] as one FHIR Bundle; returns the count. */
    suspend fun export(file: File, scope: ExportScope = ExportScope()): Long =
        profile.exportToFile(scope, file.path).toLong()

    /**
     * Add a provider. `CarryException.Conflict` if [NewSource.name] is taken,
     * `InvalidInput` for a bad name or URL (`https://`, or `http://` on loopback).
     */
    suspend fun addSource(source: NewSource): SourceInfo = profile.addSource(source)

    /** Every provider, by name, with where its sync stands. */
    suspend fun sources(): List<SourceInfo> = profile.sources()

    /**
     * Start signing in to the SMART provider [name]: open the returned URL in a
     * Custom Tab; when the browser is sent to [redirectUri] (an app link or a custom
     * scheme your activity handles), pass that whole URL to [completeSignIn].
     */
    suspend fun beginSignIn(name: String, redirectUri: String): String =
        profile.beginSignIn(name, redirectUri)

    /**
     * Finish signing in with the URL the browser was redirected to.
     * `CarryException.Auth` if the provider refused or the state does not match.
     */
    suspend fun completeSignIn(name: String, redirectedTo: String): SourceInfo =
        profile.completeSignIn(name, redirectedTo)

    /**
     * Sync the provider [name], or every provider (null). With [budgetSeconds] it
     * stops in time (what was fetched is kept; the next sync resumes), so a worker
     * can call it inside its window. A provider that fails does not throw: its
     * report says why. Progress: [syncProgress]. Cancelling the coroutine is safe.
     */
    suspend fun sync(name: String? = null, budgetSeconds: Int? = null, full: Boolean = false): List<SyncReport> {
        require(budgetSeconds == null || budgetSeconds > 0) { "budgetSeconds must be positive" }
        return profile.sync(name, budgetSeconds?.toUInt(), full)
    }

    /** The person's readings on their way to providers, newest first; then those kept back. */
    suspend fun outbox(): List<OutboxEntry> = profile.outbox()

    /** Hold, release or drop reading [itemId] before it leaves (for [source], or every provider). */
    suspend fun holdReading(itemId: Long, action: HoldAction, source: String? = null): ULong =
        profile.holdReading(itemId, source, action)

    /**
     * Whether readings of [kind] (weight, bp, pulse, glucose, mood, or `sensitive`) go to
     * [source] (null: every provider); [allow] null clears the rule. Sensitive readings
     * never go without a rule that allows them.
     */
    suspend fun setPushRule(kind: String, allow: Boolean?, source: String? = null) =
        profile.setPushRule(source, kind, allow)

    /** The push rules the person set. */
    suspend fun pushRules(): List<PushRule> = profile.pushRules()

    // Sharing: identity, people, grants, records shared with this profile, the relay.

    /** This profile's short id, name, fingerprint, keys and endpoint, as others see them. */
    suspend fun myIdentity(): MyIdentity = profile.myIdentity()

    /**
     * Use the endpoint at [url] to share and relay (`https://`; `http://` only on
     * loopback). `CarryException.InvalidInput` for a bad URL.
     */
    suspend fun setEndpoint(url: String) = profile.setEndpoint(url)

    /** The endpoint this profile shares through, or null if none is set. */
    suspend fun endpoint(): String? = profile.endpoint()

    /**
     * Make an invite code (valid 24 hours) to pass on as text or a QR code. Talks to
     * the relay first, so it needs the network and an endpoint ([setEndpoint]).
     */
    suspend fun createInvite(): Invite = profile.createInvite()

    /**
     * Take up an invite [code]; returns the inviter. Show their `fingerprint` so the
     * two people can compare it, then [verifyPerson]. `CarryException.InvalidInput`
     * for a code that is not a Carry invite, or when this profile has no endpoint yet
     * and [adoptEndpoint] is false (ask the person before adopting the invite's
     * endpoint for sharing and backups); `Expired` for an old one.
     */
    suspend fun acceptInvite(code: String, adoptEndpoint: Boolean = false): Person =
        profile.acceptInvite(code, adoptEndpoint)

    /** Everyone this profile knows. */
    suspend fun people(): List<Person> = profile.people()

    /** Carers' entries waiting for approval (with `approveContributions` on). */
    suspend fun pendingContributions(): List<PendingContribution> = profile.pendingContributions()

    /** Apply waiting entries [id] (checked against the grant again); returns how many. */
    suspend fun approveContribution(id: Long): ULong = profile.approveContribution(id)

    /** Decline waiting entries [id]; the carer is told. */
    suspend fun rejectContribution(id: Long) = profile.rejectContribution(id)

    /** Mark [person] (short id or name) verified once the safety numbers match. */
    suspend fun verifyPerson(person: String): Person = profile.verifyPerson(person)

    /**
     * Grant access, or change the grant the person holds. `CarryException.Denied` if
     * the scope includes sensitivity labels and the person is not verified. New
     * access is also emitted on [newAccess]. It reaches them at the next [exchange].
     */
    suspend fun grant(grant: NewGrant): GrantInfo = profile.grant(grant)

    /**
     * Grant [person] access as [role] to [categories] for [purpose] (default 90 days).
     * A person never verified is refused with `CarryException.Denied` unless
     * [unverified] is true: ask the person to compare safety numbers first.
     */
    suspend fun grant(
        person: String,
        role: Role,
        categories: List<Category>,
        purpose: String,
        basis: Basis? = null,
        durationSeconds: Long? = null,
        unverified: Boolean = false,
    ): GrantInfo {
        require(durationSeconds == null || durationSeconds > 0) { "durationSeconds must be positive" }
        return profile.grant(
            NewGrant(person, role, Scope(categories = categories), purpose, basis, durationSeconds, unverified),
        )
    }

    /** Every grant made by this profile (`out`) or to it (`in`), newest first. */
    suspend fun grants(): List<GrantInfo> = profile.grants()

    /** Who can see this record now, with scope, end date and last delivery. */
    suspend fun whoCanSee(): List<GrantInfo> = profile.whoCanSee()

    /**
     * Revoke [grantId]: deliveries stop now, and the copies are deleted at the next
     * [exchange]. A copy already seen cannot be recalled.
     */
    suspend fun revoke(grantId: String): GrantInfo = profile.revoke(grantId)

    /** The record exactly as [person] receives it under their grant in force. */
    suspend fun viewAs(person: String): List<TimelineItem> = profile.viewAs(person)

    /** Grant [grantId] as a FHIR `Consent` resource (JSON text). */
    suspend fun consent(grantId: String): String = profile.consent(grantId)

    /** The signed grant document of [grantId] (JSON text). */
    suspend fun grantDocument(grantId: String): String = profile.grantDocument(grantId)

    /** Records other people share with this profile, whose grants are in force. */
    suspend fun receivedProfiles(): List<ReceivedProfile> = profile.receivedProfiles()

    /**
     * Open the record [person] shares with this profile; read it like this one.
     * Close it when done. Its progress goes to this profile's flows.
     */
    suspend fun openReceived(person: String): CarryProfile =
        CarryProfile(profile.openReceived(person), relay)

    /** Records this person keeps for people with no phone (dependants). */
    suspend fun dependants(): List<Dependant> = profile.dependants()

    /**
     * Make a record for someone with no phone, kept by this person on their behalf.
     * `CarryException.InvalidInput` or `Denied` (parental responsibility at 16 or
     * over) for bad terms.
     */
    suspend fun addDependant(dependant: NewDependant): Dependant = profile.addDependant(dependant)

    /**
     * Open the record kept for [who] (profile id or name) as a profile of its own.
     * Close it when done. `CarryException.Denied` if the keeper's access is
     * suspended, ended or removed: then only [startHandOver] or [removeDependant].
     */
    suspend fun openDependant(who: String): CarryProfile =
        CarryProfile(profile.openDependant(who), relay)

    /**
     * Start handing the record kept for [who] to their own phone (it calls
     * `startMoveIn`); pair and send as for [startMoveOut], then
     * [removeDependant] with `handedOver = true`.
     */
    suspend fun startHandOver(who: String): MoveOut = profile.startHandOver(who)

    /** Delete the record kept for [who] from this device; returns their name. */
    suspend fun removeDependant(who: String, handedOver: Boolean): String =
        profile.removeDependant(who, handedOver)

    /** Notices about kept records that fell due since last asked, each once. */
    suspend fun dependantNotices(): List<DependantNotice> = profile.dependantNotices()

    /**
     * Add a reading to the record [person] shares with this profile, as their carer;
     * it goes at the next [exchange]. `CarryException.Denied` for a viewer.
     */
    suspend fun contribute(person: String, reading: Reading, note: String? = null) =
        profile.contribute(person, reading, note)

    /** The audit log, newest first, at most [limit] rows. */
    suspend fun auditLog(limit: Int = 100): List<AuditEntry> {
        require(limit > 0) { "limit must be positive" }
        return profile.auditLog(limit.toUInt())
    }

    /** Walk the audit log's hash chain; `ok` unless it was tampered with. */
    suspend fun verifyAudit(): AuditCheck = profile.verifyAudit()

    /**
     * Exchange with the relay: receive what was shared with this profile and send
     * what changed for each grant. With [budgetSeconds] it stops in time; the next
     * exchange resumes. Cancelling the coroutine is safe.
     */
    suspend fun exchange(budgetSeconds: Int? = null): ExchangeReport {
        require(budgetSeconds == null || budgetSeconds > 0) { "budgetSeconds must be positive" }
        return profile.exchange(budgetSeconds?.toUInt())
    }

    // Showing a clinician: SMART Health Links to a summary of the record.

    /**
     * Make a link to a summary of the record, encrypted on this device and uploaded to
     * the endpoint ([setEndpoint]), which never sees the key. Give out `info.link` or
     * draw `qr` ([isDark]). `CarryException.InvalidInput` if no endpoint is set, for a
     * bad expiry, passcode or label, or `SharePreset.CUSTOM` without a `scope`.
     */
    suspend fun createShareLink(link: NewShareLink): CreatedShareLink = profile.createShareLink(link)

    /**
     * Make a link from [preset] lasting [expiresSeconds] (default an hour, at most a
     * year), behind [passcode] if given (tell it to the clinician separately), for
     * one opening if [once], following the record if [longLived], with [label].
     */
    suspend fun createShareLink(
        preset: SharePreset = SharePreset.EMERGENCY,
        expiresSeconds: Long? = null,
        passcode: String? = null,
        once: Boolean = false,
        longLived: Boolean = false,
        label: String? = null,
    ): CreatedShareLink {
        require(preset != SharePreset.CUSTOM) { "a custom link needs a scope: pass a NewShareLink" }
        require(expiresSeconds == null || expiresSeconds > 0) { "expiresSeconds must be positive" }
        return profile.createShareLink(
            NewShareLink(
                preset = preset,
                expiresSeconds = expiresSeconds,
                passcode = passcode,
                once = once,
                longLived = longLived,
                label = label,
            ),
        )
    }

    /** Every link this profile made, newest first, revoked and expired ones included. */
    suspend fun shareLinks(): List<ShareLinkInfo> = profile.shareLinks()

    /**
     * Who opened link [id] (or the start of it), oldest first, as they named
     * themselves (show it as "claimed by"); new ones go into the audit log too.
     */
    suspend fun shareLinkAccesses(id: String): List<ShareAccess> = profile.shareLinkAccesses(id)

    /** Revoke link [id]: the endpoint stops serving it now. A summary already read stays read. */
    suspend fun revokeShareLink(id: String): ShareLinkInfo = profile.revokeShareLink(id)

    /**
     * Stop sharing with everyone at once: every grant in force revoked and every link
     * ended, the emergency card's too. Links the endpoint could not end are in
     * `linksNotEnded` and still work: tell the person and call again.
     */
    suspend fun stopAllSharing(): SharingStopped = profile.stopAllSharing()

    /**
     * Upload the summary of every long-lived link whose content changed, and fetch
     * new accesses; returns how many links were updated. Run it after [sync] or
     * [importFile], e.g. in the same `CoroutineWorker`.
     */
    suspend fun refreshShareLinks(): Long = profile.refreshShareLinks().toLong()

    /**
     * The emergency card, made on first call and kept current after: a year-long
     * link with no passcode (anyone holding the QR code can read the emergency
     * summary), its QR code, and the summary to show offline. Later calls return the
     * same link; a revoked card is replaced.
     */
    suspend fun emergencyCard(): EmergencyCard = profile.emergencyCard()

    /** The recovery code (14 groups of 4), made on first use: show it once, for paper. */
    suspend fun recoveryCode(): String = profile.recoveryCode()

    /** Replace the recovery code; the old one opens no backup made afterwards. */
    suspend fun regenerateRecoveryCode(): String = profile.regenerateRecoveryCode()

    /** Check two groups typed back (positions from `recoveryConfirmationPositions()`). */
    suspend fun confirmRecoveryCode(answers: List<CodeGroupAnswer>) = profile.confirmRecoveryCode(answers)

    /** When the last backup was made, and whether one is overdue (remind the person). */
    suspend fun backupStatus(): BackupStatus = profile.backupStatus()

    /**
     * A full, encrypted backup of the whole profile to [file] (for example in the
     * app's cache before handing it to the Storage Access Framework). It opens only
     * with the recovery code; provider sign-ins are never in it.
     */
    suspend fun backupToFile(file: File): BackupReport = profile.backupToFile(file.path)

    // Moving to a new phone.

    /**
     * Start moving this profile to a new phone through its endpoint ([setEndpoint]).
     * Show the move's `code()` or draw its `qr()` ([isDark]), call
     * `waitForNewDevice(...)`, then ask the person to type the six digits the new
     * phone shows (this phone never shows them) and pass them to `send(...)`:
     * `CarryException.Denied` for other digits, and nothing is sent. After `send`,
     * `wipe()` locks this profile and deletes this phone's copy; then [close] it.
     */
    suspend fun startMoveOut(): MoveOut = profile.startMoveOut()

    // A second device.

    /**
     * Start adding another device (a tablet) to this profile through its endpoint
     * ([setEndpoint]); [myName] names this device in the list if it is the first.
     * Pair as for [startMoveOut] (the other device calls
     * `health.carry.ffi.startJoin(code, name)` and [finishMoveIn]): both keep the
     * profile and [exchange] keeps them in step. `wipe()` on the result throws
     * `CarryException.InvalidInput`: adding a device is not a move.
     */
    suspend fun startAddDevice(myName: String): MoveOut = profile.startAddDevice(myName)

    /** The person's devices holding this profile, removed ones included; empty on one device. */
    suspend fun devices(): List<Device> = profile.devices()

    /**
     * Remove device [id]: nothing more is sent to it or taken from it, and the
     * profile's keys and recovery code are replaced (the old keys stop signing in
     * after the next [exchange]). Returns the new recovery code, for the person to
     * write down. What it holds stays on it. `CarryException.InvalidInput` for this
     * device itself.
     */
    suspend fun removeDevice(id: String): String = profile.removeDevice(id)

    /** Make device [id] the primary, the one that talks to other people's devices. */
    suspend fun setPrimaryDevice(id: String) = profile.setPrimaryDevice(id)
    /**
     * The person's preferences: the research and planning opt-outs as recorded in
     * Carry, the default grant length, the lock timeout and what the emergency card
     * shows (defaults for any never set). Enforce `lockTimeoutS` in the app: after
     * that many seconds in the background (0: at once), call [lock].
     */
    suspend fun preferences(): Preferences = profile.preferences()

    /**
     * Change the preferences (fields left null stay as they are) and return them as
     * they now stand; out of range is `CarryException.InvalidInput`. Recording an
     * opt-out does not register it with the NHS: when one is set on, link the person
     * to https://www.nhs.uk/your-nhs-data-matters/ (national data opt-out) or tell
     * them to ask their GP practice (type 1).
     */
    suspend fun setPreferences(change: PrefsChange): Preferences = profile.setPreferences(change)

    /** The opt-outs that are on, each a FHIR `Consent` (JSON text); empty when none is. */
    suspend fun researchConsents(): List<String> = profile.researchConsents()

    /** Free the native profile. Idempotent; later calls throw IllegalStateException. */
    override fun close() = profile.close()
}

/**
 * Whether the module at [row], [column] (from the top left, without the quiet zone)
 * is dark; outside the code (the quiet zone) is light. Draw `width` × `width` squares
 * and leave four modules of white around them.
 */
fun QrCode.isDark(row: Int, column: Int): Boolean {
    val side = width.toInt()
    return row in 0 until side && column in 0 until side && modules[row * side + column]
}

/** Someone who gained access to a profile's record: their short id, name and grant. */
data class NewAccess(val person: String, val name: String, val grantId: String)

/** Feeds the Rust-side callbacks into flows without ever blocking them. */
private class ProgressRelay : Events {
    val flow = MutableSharedFlow<ImportProgress>(
        extraBufferCapacity = 64,
        onBufferOverflow = BufferOverflow.DROP_OLDEST,
    )
    val syncFlow = MutableSharedFlow<SyncProgress>(
        extraBufferCapacity = 64,
        onBufferOverflow = BufferOverflow.DROP_OLDEST,
    )

    val accessFlow = MutableSharedFlow<NewAccess>(
        extraBufferCapacity = 64,
        onBufferOverflow = BufferOverflow.DROP_OLDEST,
    )

    override fun onImportProgress(progress: ImportProgress) {
        flow.tryEmit(progress)
    }

    override fun onSyncProgress(progress: SyncProgress) {
        syncFlow.tryEmit(progress)
    }

    override fun onNewAccess(person: String, name: String, grantId: String) {
        accessFlow.tryEmit(NewAccess(person, name, grantId))
    }

    val backupOverdueFlow = MutableSharedFlow<Long?>(
        extraBufferCapacity = 8,
        onBufferOverflow = BufferOverflow.DROP_OLDEST,
    )

    override fun onBackupOverdue(lastBackupAt: Long?) {
        backupOverdueFlow.tryEmit(lastBackupAt)
    }
}
