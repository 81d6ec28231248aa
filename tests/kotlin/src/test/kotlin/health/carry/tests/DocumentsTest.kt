package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.Category
import health.carry.ffi.Profile
import health.carry.ffi.TimelineQuery
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/** Documents: a PDF kept in the record and opened again; files that are not one refused. */
class DocumentsTest {
    @TempDir
    lateinit var dir: Path

    private fun pdf(size: Int): ByteArray {
        val random = java.util.Random(7)
        val body = ByteArray(size).also { random.nextBytes(it) }
        "%PDF-1.7\n".toByteArray().copyInto(body)
        return body
    }

    @Test
    fun `a PDF is kept and opens byte for byte`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Clemente", TestKeyStore(), null).use { p ->
            val letter = pdf(1_200_000)
            val item = p.attachDocument(letter, "Clinic letter: 3 May", "application/pdf")
            assertEquals(Category.DOCUMENTS, item.category)
            assertTrue(item.display.contains("Clinic letter"), item.display)
            val file = p.documentFile(item.id)
            assertArrayEquals(letter, file.bytes)
            assertEquals("application/pdf", file.contentType)
            assertEquals("Clinic-letter-3-May.pdf", file.fileName)
            val docs = p.timeline(TimelineQuery(categories = listOf(Category.DOCUMENTS))).items
            assertEquals(listOf(item.id), docs.map { it.id })
        }
    }

    @Test
    fun `a file that is not a document Carry keeps is InvalidInput and nothing is stored`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Clemente", TestKeyStore(), null).use { p ->
            p.importFile(Fixtures.clemente.path)
            val before = p.stats().resources
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> {
                p.attachDocument("<html>".toByteArray(), "A page", null)
            })
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> {
                p.attachDocument(pdf(100), "Letter", "image/png")
            })
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> {
                p.attachDocument(pdf(100), " ", null)
            })
            assertEquals(before, p.stats().resources)
            // An item that is not a document does not open as one.
            val first = p.timeline(TimelineQuery(limit = 1u)).items.single()
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { p.documentFile(first.id) })
        }
    }
}
