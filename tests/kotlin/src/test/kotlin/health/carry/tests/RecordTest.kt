package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.Category
import health.carry.ffi.ExportScope
import health.carry.ffi.FileFormat
import health.carry.ffi.Profile
import health.carry.ffi.TimelineItem
import health.carry.ffi.TimelineQuery
import java.nio.file.Path
import java.time.Instant
import java.time.LocalDate
import java.time.OffsetDateTime
import java.time.ZoneOffset
import kotlinx.coroutines.runBlocking
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/** Importing a shared Synthea patient and reading it back. */
class RecordTest {
    @TempDir
    lateinit var dir: Path

    private suspend fun withClemente(block: suspend (Profile) -> Unit) {
        Profile.create(dir.resolve("p").toString(), "Clemente", TestKeyStore(), null).use { p ->
            p.importFile(Fixtures.clemente.path)
            block(p)
        }
    }

    @Test
    fun `importing a Synthea bundle stores every resource once`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Clemente", TestKeyStore(), null).use { p ->
            val first = p.importFile(Fixtures.clemente.path)
            assertEquals(Fixtures.clemente.name, first.file)
            assertEquals(FileFormat.BUNDLE, first.format)
            assertEquals(Fixtures.CLEMENTE_RESOURCES, first.imported)
            assertEquals(0uL, first.updated + first.unchanged)
            assertTrue(first.rejected.isEmpty(), "rejections: ${first.rejected}")

            val stats = p.stats()
            assertEquals(Fixtures.CLEMENTE_RESOURCES, stats.resources)
            assertEquals(stats.resources, stats.byType.values.sum())
            assertEquals(1uL, stats.byType["Patient"])

            // Importing the same file again changes nothing.
            val again = p.importFile(Fixtures.clemente.path)
            assertEquals(0uL, again.imported)
            assertEquals(Fixtures.CLEMENTE_RESOURCES, again.unchanged)
            assertEquals(Fixtures.CLEMENTE_RESOURCES, p.stats().resources)
        }
    }

    @Test
    fun `paging the timeline with cursors sees every item once, newest first`(): Unit = runBlocking {
        withClemente { p ->
            val seen = mutableListOf<TimelineItem>()
            // Every category, claims and other paperwork too.
            var query = TimelineQuery(categories = Category.values().toList(), limit = 8u)
            var pages = 0
            while (true) {
                val page = p.timeline(query)
                pages++
                assertTrue(page.items.size <= 8, "a page holds at most its limit")
                seen += page.items
                val next = page.nextCursor ?: break
                query = query.copy(cursor = next)
                assertTrue(pages < 100, "the cursor must reach the end")
            }
            assertEquals(Fixtures.CLEMENTE_RESOURCES.toInt(), seen.size)
            assertEquals(seen.size, seen.map { it.id }.toSet().size, "no item twice")
            assertNewestFirst(seen)

            // One big page holds the same items in the same order.
            assertEquals(seen, p.timeline(TimelineQuery(categories = Category.values().toList(), limit = 500u)).items)

            // By default the timeline leaves out the 3 claims and 3 explanations of benefit.
            val shown = p.timeline(TimelineQuery(limit = 500u)).items
            assertEquals(seen.filter { it.category != Category.ADMINISTRATIVE }, shown)
            val paperwork = p.timeline(TimelineQuery(categories = listOf(Category.ADMINISTRATIVE), limit = 500u)).items
            assertEquals(
                listOf("Claim", "ExplanationOfBenefit"),
                paperwork.map { it.resourceType }.toSortedSet().toList(),
            )
            assertEquals(6, paperwork.size)
            assertEquals(Fixtures.CLEMENTE_RESOURCES.toInt(), shown.size + paperwork.size)
        }
    }

    @Test
    fun `out-of-range limits, foreign cursors and bad dates are InvalidInput`(): Unit = runBlocking {
        withClemente { p ->
            for (query in listOf(
                TimelineQuery(limit = 0u),
                TimelineQuery(limit = 501u),
                TimelineQuery(cursor = "not-a-cursor"),
                TimelineQuery(since = "yesterday"),
            )) {
                assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { p.timeline(query) })
            }
            assertThrowsSuspend<CarryException.InvalidInput> { p.search("encounter", 0u) }
            assertThrowsSuspend<CarryException.InvalidInput> { p.search("   ", null) }
        }
    }

    @Test
    fun `search finds glucose results`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Alfreda", TestKeyStore(), null).use { p ->
            p.importFile(Fixtures.alfreda.path)
            val hits = p.search("glucose", 5u)
            assertTrue(hits.isNotEmpty(), "glucose is in Alfreda's record")
            assertTrue(hits.size <= 5, "the limit is honoured")
            assertTrue(hits.any { it.display.contains("glucose", ignoreCase = true) }, "hits: $hits")
            assertTrue(p.search("zzyzx-no-such-word", null).isEmpty())
        }
    }

    @Test
    fun `show returns the resource as received, and NotFound for an unknown id`(): Unit = runBlocking {
        withClemente { p ->
            val item = p.timeline(TimelineQuery(limit = 1u)).items.single()
            val detail = p.show(item.id)
            assertEquals(item, detail.item)
            assertEquals(item.resourceType, JSONObject(detail.json).getString("resourceType"))
            assertNotNull(detail.fullUrl)

            val e = assertThrowsSuspend<CarryException.NotFound> { p.show(987_654_321L) }
            assertReasonful(e)
        }
    }

    @Test
    fun `export writes the record as one Bundle`(): Unit = runBlocking {
        withClemente { p ->
            val out = dir.resolve("export.json").toFile()
            val n = p.exportToFile(ExportScope(), out.path)
            assertEquals(Fixtures.CLEMENTE_RESOURCES, n)
            val bundle = JSONObject(out.readText())
            assertEquals("Bundle", bundle.getString("resourceType"))
            assertEquals(n.toInt(), bundle.getJSONArray("entry").length())
        }
    }

    private fun assertNewestFirst(items: List<TimelineItem>) {
        val dated = items.takeWhile { it.date != null }
        assertTrue(items.drop(dated.size).all { it.date == null }, "undated items come last")
        dated.zipWithNext().forEach { (a, b) ->
            assertTrue(instant(a.date!!) >= instant(b.date!!), "${a.date} before ${b.date}")
        }
    }

    private fun instant(fhir: String): Instant = when {
        fhir.contains('T') -> OffsetDateTime.parse(fhir).toInstant()
        fhir.length == 10 -> LocalDate.parse(fhir).atStartOfDay().toInstant(ZoneOffset.UTC)
        fhir.length == 7 -> LocalDate.parse("$fhir-01").atStartOfDay().toInstant(ZoneOffset.UTC)
        else -> LocalDate.parse("$fhir-01-01").atStartOfDay().toInstant(ZoneOffset.UTC)
    }

    @Test
    fun `a trend gives a concept's values newest first, and refuses an unknown word`(): Unit = runBlocking {
        withClemente { p ->
            val bp = p.trend("blood pressure")
            assertEquals("bp", bp.concept)
            assertTrue(bp.points.isNotEmpty(), "Clemente's record holds blood pressures")
            val dates = bp.points.map { it.date }
            assertEquals(dates.sortedDescending(), dates)
            assertTrue(bp.points.all { it.second != null && it.comparable && it.written.endsWith("mmHg") })
            assertEquals(bp.points.size, p.search("bp", 100u).size)
            val e = assertThrowsSuspend<CarryException.InvalidInput> { p.trend("happiness") }
            assertReasonful(e)
        }
    }

    @Test
    fun `appointments to come are listed soonest first`(): Unit = runBlocking {
        Profile.create(dir.resolve("appts").toString(), "Ada", TestKeyStore(), null).use { p ->
            val soon = LocalDate.now(ZoneOffset.UTC).plusDays(2)
            val later = soon.plusDays(20)
            val file = dir.resolve("appts.json").toFile()
            file.writeText(
                """{"resourceType":"Bundle","type":"collection","entry":[
                {"resource":{"resourceType":"Appointment","id":"l","status":"booked","description":"Review","start":"${later}T10:00:00Z","participant":[{"status":"accepted"}]}},
                {"resource":{"resourceType":"Appointment","id":"s","status":"booked","description":"Bloods","start":"${soon}T10:00:00Z","participant":[{"status":"accepted"}]}},
                {"resource":{"resourceType":"Appointment","id":"c","status":"cancelled","description":"Dentist","start":"${soon}T11:00:00Z","participant":[{"status":"accepted"}]}}]}""",
            )
            p.importFile(file.path)
            assertEquals(listOf("Bloods", "Review"), p.appointments().map { it.display })
        }
    }
}
