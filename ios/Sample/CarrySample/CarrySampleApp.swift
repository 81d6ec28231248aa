// A tiny SwiftUI app over CarryKit: unlock, timeline, import, add a reading, detail.
// Add these files to an iOS app target that depends on the CarryKit package (ios/).

import CarryKit
import SwiftUI
import UniformTypeIdentifiers

@main
struct CarrySampleApp: App {
    @StateObject private var model = SampleModel()

    var body: some Scene {
        WindowGroup {
            NavigationStack {
                if model.unlocked {
                    TimelineScreen()
                } else {
                    UnlockScreen()
                }
            }
            .environmentObject(model)
        }
    }
}

/// The sample's state: one profile in Application Support, keyed by the Keychain.
@MainActor
final class SampleModel: ObservableObject {
    @Published var unlocked = false
    @Published var items: [TimelineItem] = []
    @Published var progress: ImportProgress?
    @Published var error: String?
    @Published var busy = false

    private var profile: CarryProfile?
    private let keyStore = KeychainKeyStore(account: "sample")
    private let folder = URL.applicationSupportDirectory.appending(path: "profile")

    func unlock(name: String) async {
        await run {
            if let profile {
                try await profile.unlock(keyStore: keyStore)
            } else {
                let opened: CarryProfile
                do {
                    opened = try await CarryProfile.open(folder: folder, keyStore: keyStore)
                } catch CarryError.NotFound {
                    opened = try await CarryProfile.create(
                        folder: folder, name: name.isEmpty ? "Me" : name, keyStore: keyStore)
                }
                profile = opened
                Task { [weak self] in
                    for await p in opened.importProgress() { self?.progress = p }
                }
            }
            unlocked = true
            try await reload()
        }
    }

    func lock() {
        profile?.lock()
        items = []
        unlocked = false
    }

    func reload() async throws {
        guard let profile else { return }
        var all: [TimelineItem] = []
        for try await page in profile.timelinePages(TimelineQuery(limit: 200)) {
            all.append(contentsOf: page)
            items = all
        }
        items = all
    }

    func importFile(_ url: URL) async {
        await run {
            guard let profile else { return }
            // Carry reads by path: copy the picked file where the app may read it.
            let copy = FileManager.default.temporaryDirectory.appending(path: url.lastPathComponent)
            let scoped = url.startAccessingSecurityScopedResource()
            defer { if scoped { url.stopAccessingSecurityScopedResource() } }
            try? FileManager.default.removeItem(at: copy)
            try FileManager.default.copyItem(at: url, to: copy)
            defer { try? FileManager.default.removeItem(at: copy) }
            let report = try await profile.importFile(copy)
            progress = nil
            if !report.rejected.isEmpty { error = "\(report.rejected.count) entries were not imported" }
            try await reload()
        }
    }

    func addReading(kind: String, value: String, note: String) async -> Bool {
        await run {
            guard let profile else { return }
            _ = try await profile.addReading(kind: kind, value: value, note: note.isEmpty ? nil : note)
            try await reload()
        }
    }

    func show(_ id: Int64) async -> ResourceDetail? {
        guard let profile else { return nil }
        return try? await profile.show(id)
    }

    /// Run a Carry call, showing its reason on failure; true when it succeeded.
    @discardableResult
    private func run(_ work: () async throws -> Void) async -> Bool {
        busy = true
        error = nil
        defer { busy = false }
        do {
            try await work()
            return true
        } catch let e as CarryError {
            if case .Locked = e { unlocked = false }
            error = e.reason
        } catch {
            self.error = error.localizedDescription
        }
        return false
    }
}
