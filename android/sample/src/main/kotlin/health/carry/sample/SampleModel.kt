package health.carry.sample

import android.app.Application
import android.net.Uri
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateListOf
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.setValue
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import health.carry.CarryProfile
import health.carry.android.AndroidKeystoreKeyStore
import health.carry.ffi.CarryException
import health.carry.ffi.ImportProgress
import health.carry.ffi.ResourceDetail
import health.carry.ffi.TimelineItem
import health.carry.ffi.TimelineQuery
import health.carry.reasonOf
import java.io.File
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/** Where the app is. Back from anything but the timeline goes to the timeline. */
sealed interface Screen {
    data object Unlock : Screen
    data object Timeline : Screen
    data object AddReading : Screen
    data class Detail(val id: Long) : Screen
}

/** The sample's state: one profile in the app's private files, keyed by the Keystore. */
class SampleModel(app: Application) : AndroidViewModel(app) {
    private val folder = File(app.filesDir, "profile")
    private val keyStore = AndroidKeystoreKeyStore(alias = "health.carry.sample")
    private var profile: CarryProfile? = null
    private var progressJob: Job? = null

    var screen by mutableStateOf<Screen>(Screen.Unlock)
    var error by mutableStateOf<String?>(null)
    var busy by mutableStateOf(false)
    var progress by mutableStateOf<ImportProgress?>(null)
    var detail by mutableStateOf<ResourceDetail?>(null)
    val items = mutableStateListOf<TimelineItem>()

    /** Open the profile, or create it on first run, or unlock it after [lock]. */
    fun unlock(name: String) = work {
        val p = profile
        when {
            p != null -> p.unlock(keyStore)
            else -> {
                val opened = try {
                    CarryProfile.open(folder, keyStore)
                } catch (e: CarryException.NotFound) {
                    CarryProfile.create(folder, name.ifBlank { "Me" }, keyStore)
                }
                profile = opened
                progressJob = viewModelScope.launch { opened.importProgress.collect { progress = it } }
            }
        }
        screen = Screen.Timeline
        refresh()
    }

    fun lock() {
        profile?.lock()
        items.clear()
        detail = null
        screen = Screen.Unlock
    }

    /** The whole timeline, page by page, so the list fills as pages arrive. */
    private suspend fun refresh() {
        val p = profile ?: return
        items.clear()
        p.timelinePages(TimelineQuery(limit = 200u)).collect { items.addAll(it) }
    }

    fun importDocument(uri: Uri) = work {
        val p = profile ?: return@work
        // Carry reads files by path: copy the picked document into the cache first.
        val copy = File(getApplication<Application>().cacheDir, "import.json")
        withContext(Dispatchers.IO) {
            getApplication<Application>().contentResolver.openInputStream(uri)!!.use { input ->
                copy.outputStream().use { input.copyTo(it) }
            }
        }
        try {
            val report = p.importFile(copy)
            error = if (report.rejected.isEmpty()) null else "${report.rejected.size} entries were not imported"
        } finally {
            copy.delete()
            progress = null
        }
        refresh()
    }

    fun addReading(kind: String, value: String, note: String) = work {
        val p = profile ?: return@work
        p.addReading(kind, value, note.ifBlank { null })
        screen = Screen.Timeline
        refresh()
    }

    fun open(id: Long) = work {
        val p = profile ?: return@work
        detail = null
        screen = Screen.Detail(id)
        detail = p.show(id)
    }

    fun back() {
        if (screen != Screen.Unlock) screen = Screen.Timeline
        error = null
    }

    /** Run a Carry call, showing its reason on failure. */
    private fun work(block: suspend () -> Unit) = viewModelScope.launch {
        busy = true
        error = null
        try {
            block()
        } catch (e: CarryException.Locked) {
            screen = Screen.Unlock
            error = reasonOf(e)
        } catch (e: CarryException) {
            error = reasonOf(e)
        } finally {
            busy = false
        }
    }

    override fun onCleared() {
        progressJob?.cancel()
        profile?.close()
        profile = null
    }
}
