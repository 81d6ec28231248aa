package health.carry.sample

import android.os.Bundle
import android.util.Log
import androidx.activity.ComponentActivity
import androidx.activity.compose.BackHandler
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.compose.setContent
import androidx.activity.result.contract.ActivityResultContracts
import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.HorizontalDivider
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Surface
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.text.font.FontFamily
import androidx.compose.ui.unit.dp
import androidx.lifecycle.viewmodel.compose.viewModel
import health.carry.ffi.LogLevel
import health.carry.ffi.TimelineItem
import health.carry.logCarryTo

class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        logCarryTo(LogLevel.INFO) { level, target, message ->
            val priority = when (level) {
                LogLevel.ERROR -> Log.ERROR
                LogLevel.WARN -> Log.WARN
                LogLevel.INFO -> Log.INFO
                else -> Log.DEBUG
            }
            Log.println(priority, "carry", "$target: $message")
        }
        setContent { MaterialTheme { Surface(Modifier.fillMaxSize()) { App() } } }
    }
}

@Composable
private fun App(model: SampleModel = viewModel()) {
    BackHandler(enabled = model.screen !is Screen.Unlock && model.screen != Screen.Timeline) { model.back() }
    Column(Modifier.fillMaxSize().padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
        if (model.busy) LinearProgressIndicator(Modifier.fillMaxWidth())
        model.progress?.let { p ->
            if (p.bytesTotal > 0uL) {
                LinearProgressIndicator(
                    progress = { p.bytesRead.toFloat() / p.bytesTotal.toFloat() },
                    modifier = Modifier.fillMaxWidth(),
                )
            }
            Text("${p.resources} resources read")
        }
        model.error?.let { Text(it, color = MaterialTheme.colorScheme.error) }
        when (val screen = model.screen) {
            Screen.Unlock -> UnlockScreen(onUnlock = model::unlock)
            Screen.Timeline -> TimelineScreen(model)
            Screen.AddReading -> AddReadingScreen(onSave = model::addReading, onCancel = model::back)
            is Screen.Detail -> DetailScreen(model, screen.id)
        }
    }
}

@Composable
private fun UnlockScreen(onUnlock: (String) -> Unit) {
    var name by remember { mutableStateOf("") }
    Text("Your health record", style = MaterialTheme.typography.headlineSmall)
    Text("It stays on this phone, encrypted with a key from the Android Keystore.")
    OutlinedTextField(name, { name = it }, label = { Text("Your name (first time only)") })
    Button(onClick = { onUnlock(name) }) { Text("Unlock") }
}

@Composable
private fun TimelineScreen(model: SampleModel) {
    val picker = rememberLauncherForActivityResult(ActivityResultContracts.OpenDocument()) { uri ->
        uri?.let(model::importDocument)
    }
    Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
        Button(onClick = { model.screen = Screen.AddReading }) { Text("Add reading") }
        OutlinedButton(onClick = { picker.launch(arrayOf("application/json", "application/fhir+json", "*/*")) }) {
            Text("Import")
        }
        OutlinedButton(onClick = model::lock) { Text("Lock") }
    }
    Text("${model.items.size} items", style = MaterialTheme.typography.labelMedium)
    LazyColumn(Modifier.fillMaxSize()) {
        items(model.items, key = { it.id }) { item ->
            TimelineRow(item, onClick = { model.open(item.id) })
            HorizontalDivider()
        }
    }
}

@Composable
private fun TimelineRow(item: TimelineItem, onClick: () -> Unit) {
    Column(Modifier.fillMaxWidth().clickable(onClick = onClick).padding(vertical = 8.dp)) {
        Text(item.display, style = MaterialTheme.typography.bodyLarge)
        val date = item.date?.take(10) ?: "undated"
        val labels = if (item.sensitivity.isEmpty()) "" else " · sensitive"
        Text("$date · ${item.category.name.lowercase()} · ${item.source}$labels",
            style = MaterialTheme.typography.bodySmall)
    }
}

private val kinds = listOf("weight" to "72.5kg", "bp" to "120/80", "pulse" to "64",
    "glucose" to "5.6mmol/L", "mood" to "3")

@Composable
private fun AddReadingScreen(onSave: (String, String, String) -> Unit, onCancel: () -> Unit) {
    var kind by remember { mutableStateOf(kinds.first().first) }
    var value by remember { mutableStateOf("") }
    var note by remember { mutableStateOf("") }
    Text("Add a reading", style = MaterialTheme.typography.headlineSmall)
    Row(horizontalArrangement = Arrangement.spacedBy(4.dp)) {
        kinds.forEach { (k, _) ->
            if (k == kind) Button(onClick = {}) { Text(k) } else OutlinedButton(onClick = { kind = k }) { Text(k) }
        }
    }
    val example = kinds.first { it.first == kind }.second
    OutlinedTextField(value, { value = it }, label = { Text("Value, e.g. $example") })
    OutlinedTextField(note, { note = it }, label = { Text("Note (optional)") })
    Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
        Button(onClick = { onSave(kind, value, note) }, enabled = value.isNotBlank()) { Text("Save") }
        OutlinedButton(onClick = onCancel) { Text("Cancel") }
    }
}

@Composable
private fun DetailScreen(model: SampleModel, id: Long) {
    OutlinedButton(onClick = model::back) { Text("Back") }
    val detail = model.detail?.takeIf { it.item.id == id } ?: return
    Column(Modifier.verticalScroll(rememberScrollState()), verticalArrangement = Arrangement.spacedBy(4.dp)) {
        Text(detail.item.display, style = MaterialTheme.typography.headlineSmall)
        Text("${detail.item.resourceType} · ${detail.item.date ?: "undated"} · from ${detail.item.source}")
        detail.codes.forEach { c -> Text("${c.display ?: ""} ${c.code?.let { "($it)" } ?: ""}") }
        detail.labels.forEach { l -> Text("Sensitive: ${l.label} (${l.rule})") }
        Text(detail.json, fontFamily = FontFamily.Monospace, style = MaterialTheme.typography.bodySmall)
    }
}
