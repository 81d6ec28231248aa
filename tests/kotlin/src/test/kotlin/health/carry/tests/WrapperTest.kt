package health.carry.tests

import health.carry.CarryProfile
import health.carry.describe
import health.carry.ffi.Category
import health.carry.ffi.CarryException
import health.carry.ffi.ImportProgress
import health.carry.ffi.NewContact
import health.carry.ffi.Reading
import health.carry.ffi.TimelineQuery
import health.carry.reasonOf
import java.nio.file.Path
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/** The idiomatic layer in android/carry/src/main/kotlin, on a desktop JVM. */
class WrapperTest {
    @TempDir
    lateinit var dir: Path

    private val folder get() = dir.resolve("p").toFile()

    @Test
    fun `timelinePages follows the cursors to the end`(): Unit = runBlocking {
        CarryProfile.create(folder, "Clemente", TestKeyStore()).use { p ->
            p.importFile(Fixtures.clemente)
            // Every category, the administrative ones (hidden by default) included.
            val all = Category.values().toList()
            val pages = p.timelinePages(TimelineQuery(limit = 8u, categories = all)).toList()
            assertEquals(9, pages.size, "70 items in pages of 8")
            assertTrue(pages.dropLast(1).all { it.size == 8 })
            val ids = pages.flatten().map { it.id }
            assertEquals(Fixtures.CLEMENTE_RESOURCES.toInt(), ids.toSet().size)
            assertEquals(p.timeline(TimelineQuery(limit = 500u, categories = all)).items.map { it.id }, ids)

            // An empty selection is an empty flow, not an empty page.
            val none = p.timelinePages(TimelineQuery(since = "2100")).toList()
            assertTrue(none.isEmpty(), "pages: $none")
        }
    }

    @Test
    fun `the wrapper reaches appointments, trends, contacts and documents`(): Unit = runBlocking {
        CarryProfile.create(folder, "Clemente", TestKeyStore()).use { p ->
            p.importFile(Fixtures.clemente)
            assertTrue(p.appointments().all { it.resourceType == "Appointment" })
            assertEquals("bp", p.trend("blood pressure").concept)
            val amy = p.addContact(NewContact(name = "Amy Lee", relationship = "daughter", phone = "07700 900123"))
            assertEquals(listOf(amy), p.contacts())
            p.removeContact(amy.item!!)
            assertTrue(p.contacts().isEmpty())
            val pdf = "%PDF-1.4\n% a letter\n".toByteArray()
            val letter = p.attachDocument(pdf, "Clinic letter")
            assertTrue(p.documentFile(letter.id).bytes.contentEquals(pdf))
        }
    }

    @Test
    fun `importProgress is a flow of the Rust-side events`(): Unit = runBlocking {
        CarryProfile.create(folder, "Jene", TestKeyStore()).use { p ->
            val end = async(start = CoroutineStart.UNDISPATCHED) {
                p.importProgress.first { it.resources == Fixtures.JENE_RESOURCES }
            }
            val report = p.importFile(Fixtures.jene)
            assertEquals(Fixtures.JENE_RESOURCES, report.imported)
            val last: ImportProgress = withTimeout(10_000) { end.await() }
            assertEquals(last.bytesTotal, last.bytesRead)
        }
    }

    @Test
    fun `readings by kind, errors with plain reasons, use and close`(): Unit = runBlocking {
        val keys = TestKeyStore()
        val p = CarryProfile.create(folder, "Ada", keys)
        p.use {
            val item = it.addReading("bp", "120/80", note = "sitting")
            assertEquals(item.id, it.timeline().items.first().id)
            val e = assertThrowsSuspend<CarryException.InvalidInput> { it.addReading("weight", "72.5st") }
            assertFalse(reasonOf(e).startsWith("reason="), reasonOf(e))
            assertThrows<IllegalArgumentException> { runBlocking { it.search("x", limit = 0) } }

            it.lock()
            assertTrue(it.isLocked)
            assertThrowsSuspend<CarryException.Locked> { it.stats() }
            it.unlock(keys)
            assertEquals(item, it.show(item.id).item)
        }
        assertThrowsSuspend<IllegalStateException> { p.timelinePages().toList() }

        CarryProfile.open(folder, keys).use { assertEquals("Ada", it.info().name) }
        assertEquals("120/80 mmHg", Reading.BloodPressure(120u, 80u).describe())
    }
}
