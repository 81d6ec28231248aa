package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.HoldAction
import health.carry.ffi.NewSource
import health.carry.ffi.Profile
import health.carry.ffi.ProviderKind
import health.carry.ffi.Reading
import health.carry.ffi.SourceAuth
import health.carry.ffi.WeightUnit
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/** The person decides what goes to providers: push rules, and holding a reading back. */
class OutboxTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `a sensitive reading is kept back, and any reading can be held, released or dropped`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Ada", TestKeyStore(), null).use { p ->
            p.addSource(
                NewSource(
                    name = "gp", kind = ProviderKind.GP, baseUrl = "http://127.0.0.1:9/fhir",
                    auth = SourceAuth.None, patientId = "p1", push = true,
                ),
            )
            val weight = p.addReading(Reading.Weight(70.0, WeightUnit.KILOGRAMS), null)
            val mood = p.addReading(Reading.Mood(2.toUByte()), null)
            fun state(id: Long) = runBlocking { p.outbox().single { it.itemId == id }.state }
            assertEquals("pending", state(weight.id))
            assertEquals("withheld", state(mood.id), "a mood entry is sensitive: it does not go by default")

            assertEquals(1uL, p.holdReading(weight.id, null, HoldAction.HOLD))
            assertEquals("held", state(weight.id))
            p.holdReading(weight.id, "gp", HoldAction.RELEASE)
            assertEquals("pending", state(weight.id))
            p.holdReading(weight.id, null, HoldAction.DROP)
            assertEquals("dropped", state(weight.id))
            assertReasonful(assertThrowsSuspend<CarryException.Conflict> { p.holdReading(weight.id, null, HoldAction.RELEASE) })
            assertReasonful(assertThrowsSuspend<CarryException.NotFound> { p.holdReading(weight.id, "hospital", HoldAction.HOLD) })

            p.setPushRule("gp", "mood", true)
            assertEquals("pending", state(mood.id))
            assertEquals(listOf(Triple("gp", "mood", true)), p.pushRules().map { Triple(it.source, it.kind, it.allow) })
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { p.setPushRule(null, "shoe size", true) })
            p.setPushRule("gp", "mood", null)
            assertEquals(emptyList<Any>(), p.pushRules())
        }
    }
}
