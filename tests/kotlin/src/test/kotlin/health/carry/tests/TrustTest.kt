package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.setEndpointTrust
import health.carry.ffi.spkiPin
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.util.Base64

/** Extra roots and SPKI pins per endpoint, as an app sets them at start-up. */
class TrustTest {
    private val pin = "sha256/" + Base64.getEncoder().encodeToString(ByteArray(32) { it.toByte() })

    @Test
    fun `pins and roots are checked when set and a bad one changes nothing`() {
        val url = "https://carry.example/relay"
        setEndpointTrust(url, emptyList(), listOf(pin, pin.removePrefix("sha256/")))
        val bad = listOf(
            { setEndpointTrust(url, emptyList(), listOf("sha256/short")) },
            { setEndpointTrust(url, listOf("-----BEGIN NOTHING-----"), emptyList()) },
            { setEndpointTrust("no url", emptyList(), emptyList()) },
        )
        for (call in bad) {
            assertReasonful(assertThrows<CarryException.InvalidInput> { call() })
        }
        assertThrows<CarryException.InvalidInput> { spkiPin(byteArrayOf(1, 2, 3)) }
        // Both empty forgets the setting.
        setEndpointTrust(url, emptyList(), emptyList())
    }
}
