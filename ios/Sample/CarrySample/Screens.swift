import CarryKit
import SwiftUI
import UniformTypeIdentifiers

struct UnlockScreen: View {
    @EnvironmentObject private var model: SampleModel
    @State private var name = ""

    var body: some View {
        Form {
            Section {
                Text("Your health record stays on this device, encrypted with a key from the Keychain.")
                TextField("Your name (first time only)", text: $name)
                Button("Unlock") { Task { await model.unlock(name: name) } }
                    .disabled(model.busy)
            }
            if let error = model.error { Text(error).foregroundStyle(.red) }
        }
        .navigationTitle("Carry")
    }
}

struct TimelineScreen: View {
    @EnvironmentObject private var model: SampleModel
    @State private var adding = false
    @State private var importing = false

    var body: some View {
        List {
            if let p = model.progress, p.bytesTotal > 0 {
                ProgressView("\(p.resources) resources", value: Double(p.bytesRead), total: Double(p.bytesTotal))
            }
            if let error = model.error { Text(error).foregroundStyle(.red) }
            ForEach(model.items, id: \.id) { item in
                NavigationLink(value: item.id) {
                    VStack(alignment: .leading) {
                        Text(item.display)
                        Text("\(item.date.map { String($0.prefix(10)) } ?? "undated") · \(String(describing: item.category)) · \(item.source)")
                            .font(.caption)
                            .foregroundStyle(.secondary)
                    }
                }
            }
        }
        .navigationTitle("\(model.items.count) items")
        .navigationDestination(for: Int64.self) { id in DetailScreen(id: id) }
        .toolbar {
            ToolbarItemGroup {
                Button("Add") { adding = true }
                Button("Import") { importing = true }
                Button("Lock") { model.lock() }
            }
        }
        .sheet(isPresented: $adding) { AddReadingScreen() }
        .fileImporter(isPresented: $importing, allowedContentTypes: [.json, .data]) { result in
            if case let .success(url) = result { Task { await model.importFile(url) } }
        }
    }
}

struct AddReadingScreen: View {
    @EnvironmentObject private var model: SampleModel
    @Environment(\.dismiss) private var dismiss
    @State private var kind = "weight"
    @State private var value = ""
    @State private var note = ""
    private let examples = ["weight": "72.5kg", "bp": "120/80", "pulse": "64", "glucose": "5.6mmol/L", "mood": "3"]

    var body: some View {
        NavigationStack {
            Form {
                Picker("Kind", selection: $kind) {
                    ForEach(examples.keys.sorted(), id: \.self) { Text($0) }
                }
                TextField("Value, e.g. \(examples[kind] ?? "")", text: $value)
                TextField("Note (optional)", text: $note)
                if let error = model.error { Text(error).foregroundStyle(.red) }
            }
            .navigationTitle("Add a reading")
            .toolbar {
                Button("Save") {
                    Task {
                        if await model.addReading(kind: kind, value: value, note: note) { dismiss() }
                    }
                }
                .disabled(value.isEmpty)
            }
        }
    }
}

struct DetailScreen: View {
    @EnvironmentObject private var model: SampleModel
    let id: Int64
    @State private var detail: ResourceDetail?

    var body: some View {
        ScrollView {
            if let detail {
                VStack(alignment: .leading, spacing: 8) {
                    Text(detail.item.display).font(.headline)
                    Text("\(detail.item.resourceType) · \(detail.item.date ?? "undated") · from \(detail.item.source)")
                    ForEach(Array(detail.codes.enumerated()), id: \.offset) { _, code in
                        Text("\(code.display ?? "") \(code.code ?? "")")
                    }
                    ForEach(detail.labels, id: \.label) { label in
                        Text("Sensitive: \(label.label) (\(label.rule))")
                    }
                    Text(detail.json).font(.system(.footnote, design: .monospaced))
                }
                .padding()
            } else {
                ProgressView()
            }
        }
        .task { detail = await model.show(id) }
    }
}
