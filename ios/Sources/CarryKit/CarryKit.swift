// CarryKit: a thin Swift layer over the generated CarryFFI bindings — a profile
// type with async calls, AsyncStreams of import and sync progress and of new access,
// paging as an async sequence, provider sign-in and sync, sharing (invites, people,
// grants, received records, the relay exchange, the audit log), SMART Health Links
// for showing a clinician, moving to a new phone or adding a second device, and a
// Keychain key store. Names called on CarryFFI are checked against the generated
// Swift by tests/kotlin/check_swift_names.py (`make test`).

import CryptoKit
import Foundation
import Security
@_exported import CarryFFI

/// A person's health record, encrypted on this device.
///
/// Every call runs on the core's own threads and may be cancelled with its Task; a
/// cancelled import keeps none of its file. Failures are `CarryError`s; `reason`
/// gives the sentence to show.
public final class CarryProfile: Sendable {
    /// The generated object, for anything this layer does not cover.
    public let ffi: Profile
    private let relay: ProgressRelay

    private init(_ ffi: Profile, _ relay: ProgressRelay) {
        self.ffi = ffi
        self.relay = relay
    }

    /// Create a profile named `name` in `folder` (made if missing).
    public static func create(folder: URL, name: String, keyStore: KeyStore) async throws -> CarryProfile {
        let relay = ProgressRelay()
        let ffi = try await Profile.create(folder: folder.path, name: name, keyStore: keyStore, events: relay)
        return CarryProfile(ffi, relay)
    }

    /// Open the profile in `folder`; `CarryError.WrongKey` if `keyStore` cannot.
    public static func `open`(folder: URL, keyStore: KeyStore) async throws -> CarryProfile {
        let relay = ProgressRelay()
        let ffi = try await Profile.open(folder: folder.path, keyStore: keyStore, events: relay)
        return CarryProfile(ffi, relay)
    }

    /// On the new phone, after `startMoveIn(code:)` and showing its `digits()`:
    /// receive the profile `move` brings into the empty `folder`, its key wrapped by
    /// `keyStore`, waiting up to `waitSeconds`. Same identity, people, grants and
    /// audit log; sign in to each provider again. `CarryError.Denied` if the old phone
    /// stopped the move (other digits were typed there), `.Expired` if nothing came
    /// in time, `.InvalidInput` if `move` was already finished. A second device
    /// joining the profile finishes the same way, with the `MoveIn` from
    /// `startJoin(code:name:)`.
    public static func finishMoveIn(
        _ move: MoveIn, folder: URL, keyStore: KeyStore, waitSeconds: UInt32 = 600
    ) async throws -> CarryProfile {
        let relay = ProgressRelay()
        let ffi = try await move.finish(
            folder: folder.path, keyStore: keyStore, waitSeconds: waitSeconds, events: relay)
        return CarryProfile(ffi, relay)
    }

    /// Progress of the imports on this profile from now on, delivered from a Rust
    /// thread. Each call gives a new stream; it ends when the caller stops iterating.
    public func importProgress() -> AsyncStream<ImportProgress> {
        relay.stream()
    }

    /// Progress of the syncs on this profile from now on: each state a provider
    /// enters, and each page fetched. Delivered from a Rust thread, like
    /// `importProgress()`.
    public func syncProgress() -> AsyncStream<SyncProgress> {
        relay.syncStream()
    }

    /// Everyone who gains access to this record from now on: a new grant made with
    /// `grant`, or new access found by an `exchange`; not a change to a grant someone
    /// already held. Delivered from a Rust thread once the change is stored. Each call
    /// gives a new stream; start iterating before granting.
    public func newAccess() -> AsyncStream<NewAccess> {
        relay.accessStream()
    }

    public var isLocked: Bool { ffi.isLocked() }

    /// Close the vault and wipe its key; calls throw `CarryError.Locked` until `unlock`.
    public func lock() { ffi.lock() }

    public func unlock(keyStore: KeyStore) async throws {
        try await ffi.unlock(keyStore: keyStore)
    }

    /// Close the vault's files but keep the key, so the app can be suspended without
    /// holding file locks: call it when the scene enters the background.
    public func pause() { ffi.pause() }

    /// Reopen the files after `pause()`; the next call would do it anyway.
    public func resume() async throws { try await ffi.resume() }

    public func info() async throws -> ProfileInfo { try await ffi.info() }

    public func stats() async throws -> RecordStats { try await ffi.stats() }

    /// Import a FHIR R4 file: one resource, a Bundle, or NDJSON.
    public func importFile(_ url: URL) async throws -> ImportReport {
        try await ffi.importFile(path: url.path)
    }

    public func timeline(_ query: TimelineQuery = TimelineQuery()) async throws -> TimelinePage {
        try await ffi.timeline(query: query)
    }

    /// Every page of the timeline for `query`, newest first, to the end.
    public func timelinePages(_ query: TimelineQuery = TimelineQuery()) -> AsyncThrowingStream<[TimelineItem], Error> {
        let ffi = self.ffi
        return AsyncThrowingStream { continuation in
            let task = Task {
                var next = query
                do {
                    repeat {
                        let page = try await ffi.timeline(query: next)
                        if !page.items.isEmpty { continuation.yield(page.items) }
                        next.cursor = page.nextCursor
                    } while next.cursor != nil && !Task.isCancelled
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    public func search(_ text: String, limit: UInt32? = nil) async throws -> [TimelineItem] {
        try await ffi.search(text: text, limit: limit)
    }

    public func show(_ id: Int64) async throws -> ResourceDetail {
        try await ffi.show(id: id)
    }

    /// Appointments still to come, soonest first.
    public func appointments() async throws -> [TimelineItem] {
        try await ffi.appointments()
    }

    /// A result's values over time, newest first: "hba1c", "bp", "weight", a LOINC code…
    public func trend(_ concept: String) async throws -> TrendSeries {
        try await ffi.trend(concept: concept)
    }

    /// The people to contact: the ones the person added first, then those providers' records name.
    public func contacts() async throws -> [Contact] {
        try await ffi.contacts()
    }

    /// Add someone to contact: kept in the record, on the emergency card, never sent to a provider.
    public func addContact(_ contact: NewContact) async throws -> Contact {
        try await ffi.addContact(contact: contact)
    }

    /// Remove a contact the person added (its `item`).
    public func removeContact(_ item: Int64) async throws {
        try await ffi.removeContact(item: item)
    }

    /// Keep a PDF or an image (JPEG, PNG, HEIC; at most 20 MB) as a document in the record.
    public func attachDocument(_ data: Data, title: String, contentType: String? = nil) async throws -> TimelineItem {
        try await ffi.attachDocument(bytes: data, title: title, contentType: contentType)
    }

    /// The file of a document the record holds: hand it to Quick Look or a share sheet.
    public func documentFile(_ id: Int64) async throws -> DocumentFile {
        try await ffi.documentFile(id: id)
    }

    public func addReading(_ reading: Reading, note: String? = nil, takenAt: Int64? = nil) async throws -> TimelineItem {
        try await ffi.addReading(reading: reading, note: note, takenAt: takenAt)
    }

    /// Record a reading as typed: `("weight", "72.5kg")`, `("bp", "120/80")`.
    public func addReading(kind: String, value: String, note: String? = nil, takenAt: Int64? = nil) async throws -> TimelineItem {
        try await ffi.addReading(reading: parseReading(kind: kind, value: value), note: note, takenAt: takenAt)
    }

    /// Delete the person's reading `id`; one that reached a provider is taken back there
    /// (entered-in-error) at the next `sync`. Returns how many providers that is.
    @discardableResult
    public func deleteReading(_ id: Int64) async throws -> UInt64 {
        try await ffi.deleteReading(id: id)
    }

    /// Replace the person's reading `id` with `reading`: the old one deleted, the new one sent on.
    public func amendReading(_ id: Int64, with reading: Reading, note: String? = nil, takenAt: Int64? = nil) async throws -> TimelineItem {
        try await ffi.amendReading(id: id, reading: reading, note: note, takenAt: takenAt)
    }

    /// Write `scope` of the record to `url` as one FHIR Bundle; returns the count.
    public func export(to url: URL, scope: ExportScope = ExportScope()) async throws -> UInt64 {
        try await ffi.exportToFile(scope: scope, path: url.path)
    }

    // MARK: Providers and sync

    /// Add a provider. `CarryError.Conflict` if the name is taken, `InvalidInput` for
    /// a bad name or URL (`https://`, or `http://` on loopback only).
    public func addSource(_ source: NewSource) async throws -> SourceInfo {
        try await ffi.addSource(source: source)
    }

    /// Every provider, by name, with where its sync stands.
    public func sources() async throws -> [SourceInfo] {
        try await ffi.sources()
    }

    /// Start signing in to the SMART provider `name`: returns the provider's
    /// authorization URL as a string.
    ///
    /// Showing it is the app's job: open `URL(string:)` of it in an
    /// `ASWebAuthenticationSession` whose callback scheme is that of `redirectUri`
    /// (e.g. `carry` for `carry://callback`), with a presentation context provider,
    /// and `prefersEphemeralWebBrowserSession` as you see fit. When the session
    /// completes, pass `callbackURL.absoluteString` to `completeSignIn`. If the
    /// person cancels (`ASWebAuthenticationSessionError.canceledLogin`), do nothing:
    /// the source stays as it was.
    public func beginSignIn(name: String, redirectUri: String) async throws -> String {
        try await ffi.beginSignIn(name: name, redirectUri: redirectUri)
    }

    /// Finish signing in with the whole URL the browser was redirected to.
    /// `CarryError.Auth` if the provider refused or the state does not match the
    /// sign-in `beginSignIn` started.
    public func completeSignIn(name: String, redirectedTo: String) async throws -> SourceInfo {
        try await ffi.completeSignIn(name: name, redirectedTo: redirectedTo)
    }

    /// Sync the provider `name`, or every provider (`nil`). A provider that fails
    /// does not throw: its report says why (`state`, `error`). Cancelling the Task is
    /// safe; what was fetched is kept and the next sync resumes.
    ///
    /// With `budgetSeconds` it stops in time, which is what background work needs:
    /// register a `BGAppRefreshTask` identifier (Info.plist
    /// `BGTaskSchedulerPermittedIdentifiers`), submit a `BGAppRefreshTaskRequest`
    /// with `BGTaskScheduler.shared.submit`, and in the handler run
    /// `sync(nil, budgetSeconds: 25, full: false)` in a Task that the task's
    /// `expirationHandler` cancels, then call `setTaskCompleted(success:)` and
    /// schedule the next request. The vault key must be available, so the
    /// `KeychainKeyStore` item's accessibility decides whether it can run while the
    /// device is locked.
    public func sync(_ name: String? = nil, budgetSeconds: UInt32? = nil, full: Bool = false) async throws -> [SyncReport] {
        try await ffi.sync(name: name, budgetSeconds: budgetSeconds, full: full)
    }

    /// The person's readings on their way to providers, newest first; then those kept back.
    public func outbox() async throws -> [OutboxEntry] {
        try await ffi.outbox()
    }

    /// Hold, release or drop reading `itemId` before it leaves (for `source`, or every provider).
    @discardableResult
    public func holdReading(_ itemId: Int64, action: HoldAction, source: String? = nil) async throws -> UInt64 {
        try await ffi.holdReading(itemId: itemId, source: source, action: action)
    }

    /// Whether readings of `kind` (weight, bp, pulse, glucose, mood, or `sensitive`) go to
    /// `source` (nil: every provider); `allow` nil clears the rule. Sensitive readings never
    /// go without a rule that allows them.
    public func setPushRule(_ kind: String, allow: Bool?, source: String? = nil) async throws {
        try await ffi.setPushRule(source: source, kind: kind, allow: allow)
    }

    /// The push rules the person set.
    public func pushRules() async throws -> [PushRule] {
        try await ffi.pushRules()
    }

    // MARK: Sharing

    /// This profile's short id, name, fingerprint, keys and endpoint, as others see them.
    public func myIdentity() async throws -> MyIdentity {
        try await ffi.myIdentity()
    }

    /// Use the endpoint at `url` to share and relay (`https://`; `http://` only on
    /// loopback). `CarryError.InvalidInput` for a bad URL.
    public func setEndpoint(_ url: String) async throws {
        try await ffi.setEndpoint(url: url)
    }

    /// The endpoint this profile shares through, or `nil` if none is set.
    public func endpoint() async throws -> String? {
        try await ffi.endpoint()
    }

    /// Make an invite code (valid 24 hours) to pass on as text or a QR code. Talks to
    /// the relay first, so it needs the network and an endpoint (`setEndpoint`).
    public func createInvite() async throws -> Invite {
        try await ffi.createInvite()
    }

    /// Take up an invite `code`; returns the inviter. Show their `fingerprint` so the
    /// two people can compare it, then `verifyPerson`. `CarryError.InvalidInput` for a
    /// code that is not a Carry invite, or when this profile has no endpoint yet and
    /// `adoptEndpoint` is false (ask the person before adopting the invite's endpoint
    /// for sharing and backups); `Expired` for an old one.
    public func acceptInvite(_ code: String, adoptEndpoint: Bool = false) async throws -> Person {
        try await ffi.acceptInvite(code: code, adoptEndpoint: adoptEndpoint)
    }

    /// Everyone this profile knows.
    public func people() async throws -> [Person] {
        try await ffi.people()
    }

    /// Carers' entries waiting for approval (with `approveContributions` on).
    public func pendingContributions() async throws -> [PendingContribution] {
        try await ffi.pendingContributions()
    }

    /// Apply waiting entries `id` (checked against the grant again); returns how many.
    @discardableResult
    public func approveContribution(_ id: Int64) async throws -> UInt64 {
        try await ffi.approveContribution(id: id)
    }

    /// Decline waiting entries `id`; the carer is told.
    public func rejectContribution(_ id: Int64) async throws {
        try await ffi.rejectContribution(id: id)
    }

    /// Mark `person` (short id or name) verified once the safety numbers match.
    public func verifyPerson(_ person: String) async throws -> Person {
        try await ffi.verifyPerson(person: person)
    }

    /// Grant access, or change the grant the person holds. `CarryError.Denied` if the
    /// person is not verified (unless `unverified` is set), or if the scope includes
    /// sensitivity labels and they are not. New access is also delivered to
    /// `newAccess()`. It reaches them at the next `exchange`.
    public func grant(_ grant: NewGrant) async throws -> GrantInfo {
        try await ffi.grant(grant: grant)
    }

    /// Grant `person` access as `role` to `categories` for `purpose` (default 90 days);
    /// a person never verified only with `unverified: true`.
    public func grant(
        _ person: String, role: Role, categories: [Category], purpose: String,
        basis: Basis? = nil, durationSeconds: Int64? = nil, unverified: Bool = false
    ) async throws -> GrantInfo {
        try await ffi.grant(grant: NewGrant(
            person: person, role: role, scope: Scope(categories: categories),
            purpose: purpose, basis: basis, durationSeconds: durationSeconds,
            unverified: unverified))
    }

    /// Every grant made by this profile (`out`) or to it (`in`), newest first.
    public func grants() async throws -> [GrantInfo] {
        try await ffi.grants()
    }

    /// Who can see this record now, with scope, end date and last delivery.
    public func whoCanSee() async throws -> [GrantInfo] {
        try await ffi.whoCanSee()
    }

    /// Revoke `grantId`: deliveries stop now, and the copies are deleted at the next
    /// `exchange`. A copy already seen cannot be recalled.
    public func revoke(_ grantId: String) async throws -> GrantInfo {
        try await ffi.revoke(grantId: grantId)
    }

    /// The record exactly as `person` receives it under their grant in force.
    public func viewAs(_ person: String) async throws -> [TimelineItem] {
        try await ffi.viewAs(person: person)
    }

    /// Grant `grantId` as a FHIR `Consent` resource (JSON text).
    public func consent(_ grantId: String) async throws -> String {
        try await ffi.consent(grantId: grantId)
    }

    /// The signed grant document of `grantId` (JSON text).
    public func grantDocument(_ grantId: String) async throws -> String {
        try await ffi.grantDocument(grantId: grantId)
    }

    /// Records other people share with this profile, whose grants are in force.
    public func receivedProfiles() async throws -> [ReceivedProfile] {
        try await ffi.receivedProfiles()
    }

    /// Open the record `person` shares with this profile; read it like this one. Its
    /// progress goes to this profile's streams.
    public func openReceived(_ person: String) async throws -> CarryProfile {
        let receivedFFI = try await ffi.openReceived(person: person)
        return CarryProfile(receivedFFI, relay)
    }

    /// Records this person keeps for people with no phone (dependants).
    public func dependants() async throws -> [Dependant] {
        try await ffi.dependants()
    }

    /// Make a record for someone with no phone, kept by this person on their
    /// behalf. `CarryError.InvalidInput` or `.Denied` (parental responsibility at 16
    /// or over) for bad terms.
    public func addDependant(_ dependant: NewDependant) async throws -> Dependant {
        try await ffi.addDependant(dependant: dependant)
    }

    /// Open the record kept for `who` (profile id or name) as a profile of its own.
    /// `CarryError.Denied` if the keeper's access is suspended, ended or removed:
    /// then only `startHandOver(_:)` or `removeDependant(_:handedOver:)`.
    public func openDependant(_ who: String) async throws -> CarryProfile {
        let dependantFFI = try await ffi.openDependant(who: who)
        return CarryProfile(dependantFFI, relay)
    }

    /// Start handing the record kept for `who` to their own phone (it calls
    /// `startMoveIn`); pair and send as for `startMoveOut()`, then
    /// `removeDependant(_:handedOver: true)`.
    public func startHandOver(_ who: String) async throws -> MoveOut {
        try await ffi.startHandOver(who: who)
    }

    /// Delete the record kept for `who` from this device; returns their name.
    public func removeDependant(_ who: String, handedOver: Bool) async throws -> String {
        try await ffi.removeDependant(who: who, handedOver: handedOver)
    }

    /// Notices about kept records that fell due since last asked, each once.
    public func dependantNotices() async throws -> [DependantNotice] {
        try await ffi.dependantNotices()
    }

    /// Add a reading to the record `person` shares with this profile, as their
    /// carer; it goes at the next `exchange`. `CarryError.Denied` for a viewer.
    public func contribute(to person: String, reading: Reading, note: String? = nil) async throws {
        try await ffi.contribute(person: person, reading: reading, note: note)
    }

    /// The audit log, newest first, at most `limit` rows.
    public func auditLog(limit: UInt32 = 100) async throws -> [AuditEntry] {
        try await ffi.auditLog(limit: limit)
    }

    /// Walk the audit log's hash chain; `ok` unless it was tampered with.
    public func verifyAudit() async throws -> AuditCheck {
        try await ffi.verifyAudit()
    }

    /// Exchange with the relay: receive what was shared with this profile and send
    /// what changed for each grant. With `budgetSeconds` it stops in time (fit it in a
    /// `BGAppRefreshTask` like `sync`); the next exchange resumes. Cancelling the Task
    /// is safe.
    public func exchange(budgetSeconds: UInt32? = nil) async throws -> ExchangeReport {
        try await ffi.exchange(budgetSeconds: budgetSeconds)
    }

    // MARK: Showing a clinician

    /// Make a SMART Health Link to a summary of the record, encrypted on this device
    /// and uploaded to the endpoint (`setEndpoint`), which never sees the key. Give
    /// out `info.link` or draw `qr` (`isDark(row:column:)`). `CarryError.InvalidInput`
    /// if no endpoint is set, for a bad expiry, passcode or label, or `.custom`
    /// without a `scope`.
    public func createShareLink(_ link: NewShareLink) async throws -> CreatedShareLink {
        try await ffi.createShareLink(link: link)
    }

    /// Make a link from `preset` lasting `expiresSeconds` (default an hour, at most a
    /// year), behind `passcode` if given (tell it to the clinician separately), for one
    /// opening if `once`, following the record if `longLived`, with `label`. A custom
    /// scope needs the `NewShareLink` form.
    public func createShareLink(
        preset: SharePreset = .emergency, expiresSeconds: Int64? = nil, passcode: String? = nil,
        once: Bool = false, longLived: Bool = false, label: String? = nil
    ) async throws -> CreatedShareLink {
        try await ffi.createShareLink(link: NewShareLink(
            preset: preset, scope: nil, expiresSeconds: expiresSeconds, passcode: passcode,
            once: once, longLived: longLived, label: label))
    }

    /// Every link this profile made, newest first, revoked and expired ones included.
    public func shareLinks() async throws -> [ShareLinkInfo] {
        try await ffi.shareLinks()
    }

    /// Who opened link `id` (or the start of it), oldest first, as they named
    /// themselves (show it as "claimed by"); new ones go into the audit log too.
    public func shareLinkAccesses(_ id: String) async throws -> [ShareAccess] {
        try await ffi.shareLinkAccesses(id: id)
    }

    /// Revoke link `id`: the endpoint stops serving it now. A summary already read
    /// stays read.
    public func revokeShareLink(_ id: String) async throws -> ShareLinkInfo {
        try await ffi.revokeShareLink(id: id)
    }

    /// Stop sharing with everyone at once: every grant in force revoked and every link
    /// ended, the emergency card's too. Links the endpoint could not end are in
    /// `linksNotEnded` and still work: tell the person and call again.
    public func stopAllSharing() async throws -> SharingStopped {
        try await ffi.stopAllSharing()
    }

    /// Upload the summary of every long-lived link whose content changed, and fetch
    /// new accesses; returns how many links were updated. Run it after `sync` or an
    /// import, in the same background task.
    public func refreshShareLinks() async throws -> UInt64 {
        try await ffi.refreshShareLinks()
    }

    /// The emergency card, made on first call and kept current after: a year-long
    /// link with no passcode (anyone holding the QR code can read the emergency
    /// summary), its QR code, and the summary to show offline (a lock-screen widget).
    /// Later calls return the same link; a revoked card is replaced.
    public func emergencyCard() async throws -> EmergencyCard {
        try await ffi.emergencyCard()
    }

    /// The recovery code (14 groups of 4), made on first use: show it once, for paper.
    public func recoveryCode() async throws -> String {
        try await ffi.recoveryCode()
    }

    /// Replace the recovery code; the old one opens no backup made afterwards.
    public func regenerateRecoveryCode() async throws -> String {
        try await ffi.regenerateRecoveryCode()
    }

    /// Check two groups typed back (positions from `recoveryConfirmationPositions()`).
    public func confirmRecoveryCode(_ answers: [CodeGroupAnswer]) async throws {
        try await ffi.confirmRecoveryCode(answers: answers)
    }

    /// When the last backup was made, and whether one is overdue (remind the person).
    public func backupStatus() async throws -> BackupStatus {
        try await ffi.backupStatus()
    }

    /// A full, encrypted backup of the whole profile to `url` (a file URL). It opens
    /// only with the recovery code; provider sign-ins are never in it.
    public func backupToFile(_ url: URL) async throws -> BackupReport {
        try await ffi.backupToFile(path: url.path)
    }

    // MARK: Moving to a new phone

    /// Start moving this profile to a new phone through its endpoint (`setEndpoint`).
    /// Show the move's `code()` or draw its `qr()` (`isDark(row:column:)`), call
    /// `waitForNewDevice(waitSeconds:)`, then ask the person to type the six digits the
    /// new phone shows (this phone never shows them) and pass them to
    /// `send(typedDigits:waitSeconds:)`: `CarryError.Denied` for other digits, and
    /// nothing is sent. After `send`, `wipe()` locks this profile and deletes this
    /// phone's copy.
    public func startMoveOut() async throws -> MoveOut {
        try await ffi.startMoveOut()
    }

    // MARK: A second device

    /// Start adding another device (an iPad) to this profile through its endpoint
    /// (`setEndpoint`); `myName` names this device in the list if it is the first.
    /// Pair as for `startMoveOut()` (the other device calls `startJoin(code:name:)`
    /// and `finishMoveIn`): both keep the profile and `exchange` keeps them in step.
    /// `wipe()` on the result throws `CarryError.InvalidInput`: adding a device is
    /// not a move.
    public func startAddDevice(myName: String) async throws -> MoveOut {
        try await ffi.startAddDevice(myName: myName)
    }

    /// The person's devices holding this profile, removed ones included; empty on
    /// one device.
    public func devices() async throws -> [Device] {
        try await ffi.devices()
    }

    /// Remove device `id`: nothing more is sent to it or taken from it, and the
    /// profile's keys and recovery code are replaced (the old keys stop signing in
    /// after the next `exchange`). Returns the new recovery code, for the person to
    /// write down. What it holds stays on it. `CarryError.InvalidInput` for this
    /// device itself.
    @discardableResult
    public func removeDevice(_ id: String) async throws -> String {
        try await ffi.removeDevice(id: id)
    }

    /// Make device `id` the primary, the one that talks to other people's devices.
    public func setPrimaryDevice(_ id: String) async throws {
        try await ffi.setPrimaryDevice(id: id)
    }

    /// The person's preferences: the research and planning opt-outs as recorded in
    /// Carry, the default grant length, the lock timeout and what the emergency card
    /// shows (defaults for any never set). Enforce `lockTimeoutS` in the app: after
    /// that many seconds in the background (0: at once), call `lock()`.
    public func preferences() async throws -> Preferences {
        try await ffi.preferences()
    }

    /// Change the preferences (fields left nil stay as they are) and return them as
    /// they now stand; out of range is `CarryError.InvalidInput`. Recording an
    /// opt-out does not register it with the NHS: when one is set on, link the person
    /// to https://www.nhs.uk/your-nhs-data-matters/ (national data opt-out) or tell
    /// them to ask their GP practice (type 1).
    public func setPreferences(_ change: PrefsChange) async throws -> Preferences {
        try await ffi.setPreferences(change: change)
    }

    /// The opt-outs that are on, each a FHIR `Consent` (JSON text); empty when none is.
    public func researchConsents() async throws -> [String] {
        try await ffi.researchConsents()
    }
}

extension QrCode {
    /// Whether the module at `row`, `column` (from the top left, without the quiet
    /// zone) is dark; outside the code (the quiet zone) is light. Draw `width` ×
    /// `width` squares with four modules of white around them.
    public func isDark(row: Int, column: Int) -> Bool {
        let side = Int(width)
        guard row >= 0, row < side, column >= 0, column < side else { return false }
        return modules[row * side + column]
    }
}

/// Someone who gained access to a profile's record: their short id, name and grant.
public struct NewAccess: Sendable {
    /// Their short id.
    public let person: String
    /// Their name.
    public let name: String
    /// The grant that gives them access.
    public let grantId: String
}

/// Fans the Rust-side callbacks out to any number of AsyncStreams.
private final class ProgressRelay: Events, @unchecked Sendable {
    private let lock = NSLock()
    private var continuations: [UUID: AsyncStream<ImportProgress>.Continuation] = [:]
    private var syncContinuations: [UUID: AsyncStream<SyncProgress>.Continuation] = [:]
    private var accessContinuations: [UUID: AsyncStream<NewAccess>.Continuation] = [:]

    func onImportProgress(progress: ImportProgress) {
        lock.lock()
        let targets = Array(continuations.values)
        lock.unlock()
        for continuation in targets { continuation.yield(progress) }
    }

    func onSyncProgress(progress: SyncProgress) {
        lock.lock()
        let targets = Array(syncContinuations.values)
        lock.unlock()
        for continuation in targets { continuation.yield(progress) }
    }

    func onNewAccess(person: String, name: String, grantId: String) {
        lock.lock()
        let targets = Array(accessContinuations.values)
        lock.unlock()
        let access = NewAccess(person: person, name: name, grantId: grantId)
        for continuation in targets { continuation.yield(access) }
    }

    /// The app decides how to remind the person; `CarryProfile.backupStatus()` has
    /// the details. Nothing is streamed here yet.
    func onBackupOverdue(lastBackupAt: Int64?) {}

    func stream() -> AsyncStream<ImportProgress> {
        AsyncStream(bufferingPolicy: .bufferingNewest(64)) { continuation in
            let id = UUID()
            lock.lock()
            continuations[id] = continuation
            lock.unlock()
            continuation.onTermination = { [weak self] _ in self?.remove(id) }
        }
    }

    func syncStream() -> AsyncStream<SyncProgress> {
        AsyncStream(bufferingPolicy: .bufferingNewest(64)) { continuation in
            let id = UUID()
            lock.lock()
            syncContinuations[id] = continuation
            lock.unlock()
            continuation.onTermination = { [weak self] _ in self?.remove(id) }
        }
    }

    func accessStream() -> AsyncStream<NewAccess> {
        AsyncStream(bufferingPolicy: .bufferingNewest(64)) { continuation in
            let id = UUID()
            lock.lock()
            accessContinuations[id] = continuation
            lock.unlock()
            continuation.onTermination = { [weak self] _ in self?.remove(id) }
        }
    }

    private func remove(_ id: UUID) {
        lock.lock()
        continuations[id] = nil
        syncContinuations[id] = nil
        accessContinuations[id] = nil
        lock.unlock()
    }
}

extension CarryError {
    /// The reason, as one sentence fit to show; never health data.
    public var reason: String {
        switch self {
        case let .Locked(reason), let .WrongKey(reason), let .NotFound(reason),
             let .InvalidInput(reason), let .Auth(reason), let .Denied(reason),
             let .Expired(reason), let .Revoked(reason), let .Conflict(reason),
             let .Storage(reason), let .Cancelled(reason), let .NeedsUpdate(reason),
             let .Internal(reason):
            return reason
        case let .Network(_, reason):
            return reason
        }
    }
}

/// Wraps the vault key with a random 256-bit key kept in the Keychain, readable only
/// while the device is unlocked and never synced or migrated to another device
/// (`kSecAttrAccessibleWhenUnlockedThisDeviceOnly`). The blob Carry keeps is the
/// AES-GCM combined form: nonce ‖ ciphertext ‖ tag.
public final class KeychainKeyStore: KeyStore, Sendable {
    private let service: String
    private let account: String

    /// One Keychain item per profile: `account` names it within `service`.
    public init(service: String = "health.carry.vault-key", account: String = "default") {
        self.service = service
        self.account = account
    }

    public func wrap(key: Data) throws -> Data {
        guard let sealingKey = try wrappingKey(create: true) else {
            throw CarryError.Internal(reason: "no Keychain key could be made")
        }
        let sealed = try AES.GCM.seal(key, using: sealingKey)
        guard let combined = sealed.combined else {
            throw CarryError.Internal(reason: "AES-GCM gave no combined form")
        }
        return combined
    }

    public func unwrap(wrapped: Data) throws -> Data {
        guard let openingKey = try wrappingKey(create: false) else {
            throw CarryError.WrongKey(reason: "this device's Keychain has no key for this vault")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: wrapped)
            return try AES.GCM.open(box, using: openingKey)
        } catch CryptoKitError.authenticationFailure {
            throw CarryError.WrongKey(reason: "the Keychain key does not open this vault")
        } catch {
            throw CarryError.WrongKey(reason: "the wrapped key is not one this store made")
        }
    }

    /// Forget the wrapping key: vaults wrapped with it can then only be recovered
    /// another way.
    public func delete() {
        _ = SecItemDelete(baseQuery() as CFDictionary)
    }

    private func baseQuery() -> [String: Any] {
        [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
            kSecUseDataProtectionKeychain as String: true,
        ]
    }

    private func wrappingKey(create: Bool) throws -> SymmetricKey? {
        var query = baseQuery()
        query[kSecReturnData as String] = true
        query[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        switch status {
        case errSecSuccess:
            guard let data = item as? Data, data.count == 32 else {
                throw CarryError.Internal(reason: "the Keychain item is not a 256-bit key")
            }
            return SymmetricKey(data: data)
        case errSecItemNotFound:
            return create ? try addKey() : nil
        case errSecInteractionNotAllowed:
            throw CarryError.Locked(reason: "unlock the device first")
        default:
            throw CarryError.Internal(reason: "the Keychain read failed (status \(status))")
        }
    }

    private func addKey() throws -> SymmetricKey {
        let key = SymmetricKey(size: .bits256)
        var attributes = baseQuery()
        attributes[kSecValueData as String] = key.withUnsafeBytes { Data($0) }
        attributes[kSecAttrAccessible as String] = kSecAttrAccessibleWhenUnlockedThisDeviceOnly
        let status = SecItemAdd(attributes as CFDictionary, nil)
        if status == errSecDuplicateItem, let existing = try wrappingKey(create: false) {
            return existing // another caller added it first
        }
        guard status == errSecSuccess else {
            throw CarryError.Internal(reason: "the Keychain write failed (status \(status))")
        }
        return key
    }
}
