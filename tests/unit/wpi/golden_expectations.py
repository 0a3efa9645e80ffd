"""What each golden server document holds: nonce, Action and items, as the guide prints
them (tests/data/golden/, see docs/golden-examples.md)."""

from __future__ import annotations

from provd.wpi.model import Item


def it(name: str, value: str = "", index: int | None = None) -> Item:
    return Item(name=name, value=value, index=index)


_P045_NAMES = [
    "device-type",
    "related-device-type",
    "software-type",
    "software-version",
    "contact-me-uri",
    "mac-addr",
    "e164",
    "ipaddress",
    "reg-addr",
    "reg-port",
    "reg-ttl",
    "register-by-name",
    "registrar-addr",
    "registrar-port",
    "rtp-base-port",
    "server-type",
]

#: file -> (nonce, Action text, items) as the server document carries them.
SERVER_EXAMPLES: dict[str, tuple[str, str, tuple[Item, ...]]] = {
    "p027-server-writeitems-item-examples.xml": (
        "00000000000000000000000000000027",
        "WriteItems",
        (
            it("e164", "49897223290"),
            it("device-type", "OpenStage 60"),
            it("ldap-server-address", "ldap.mycompany.com", 1),
            it("reg-addr", "192.168.1.117"),
        ),
    ),
    "p031-server-cleanup-wrong-tan.xml": (
        "00000000000000000000000000000031",
        "CleanUp",
        (it("cleanup-reason", "wrong TAN from device"),),
    ),
    "p034-server-readallitems-mydomain-namespace.xml": (
        "ab15234de14f15a667c6f8d",
        "ReadAllItems",
        (),
    ),
    "p035-server-cleanup.xml": ("ab15234de14f15a667c6f8d", "CleanUp", ()),
    "p041-server-cleanup.xml": ("9A6439F4E323CDB19283E40459828B56", "CleanUp", ()),
    "p044-server-readitems.xml": (
        "EB2C4CDF45D86E548CCD6F6612B26112",
        "ReadItems",
        tuple(it(name) for name in _P045_NAMES),
    ),
    "p045-server-cleanup.xml": ("EB2C4CDF45D86E548CCD6F6612B26112", "CleanUp", ()),
    "p048-server-writeitems.xml": (
        "58D4EE11C844865CAF0E9AA11ED2856F",
        "WriteItems",
        (
            it("sntp-tz-offset", "60"),
            it("auto-daylight-save", "true"),
            it("sntp-addr", "time.nist.gov"),
            it("daylight-save", "true"),
            it("daylight-save-zone-id", "9"),
        ),
    ),
    "p051-server-restart.xml": ("ab15234de14f15a667c6f8d", "Restart", ()),
    "p051-server-factory-reset.xml": (
        "7D49388DE3E95AE2450BD64FEB8A2079",
        "Restart",
        (it("restart-password", "124816"), it("restart-type", "FactoryReset")),
    ),
    "p053-server-filedeployment-ftp.xml": (
        "93D295F38327460697324D39D9824FDB",
        "FileDeployment",
        (
            it("file-server", "192.168.1.150"),
            it("file-pwd", "dlsftp5"),
            it("file-path", "/media"),
            it("file-name", "ringtone-phone.wav"),
            it("file-type", "RINGTONE"),
            it("file-username", "dls"),
            it("file-port", "21"),
        ),
    ),
    "p053-server-filedeployment-https.xml": (
        "93D295F38327460697324D39D9824FDB",
        "FileDeployment",
        (
            it("file-type", "RINGTONE"),
            it("file-username", "dls"),
            it("file-https-base-url", "https://192.168.1.150/media/ringtone-phone.wav"),
        ),
    ),
    "p055-server-filedeployment-multiple.xml": (
        "E5BFC5E2FBCE6CD3D20DC9AD975C0355",
        "FileDeployment",
        tuple(
            it(name, value, index)
            for index, file_name, file_type in (
                (1, "Logo for OpenStage 80.png", "LOGO"),
                (2, "ringtone-ringing.wav", "RINGTONE"),
            )
            for name, value in (
                ("file-server", "192.168.1.150"),
                ("file-path", "/media/"),
                ("file-name", file_name),
                ("file-type", file_type),
                ("file-pwd", "dlsftp5"),
                ("file-port", "21"),
                ("file-username", "dls"),
                ("file-action", "deploy"),
            )
        ),
    ),
    "p057-server-softwaredeployment.xml": (
        "BDB60C70FE707FD023E09F0A9363DD8D",
        "SoftwareDeployment",
        (
            it("file-server", "192.168.1.150"),
            it("file-pwd", "dlsftp5"),
            it("file-path", "/OS/SIP/HI"),
            it("file-name", "OS_80_SIP_V1_R4_9_0.img"),
            it("file-type", "APP"),
            it("file-username", "dls"),
            it("file-port", "21"),
            it("file-sw-type", "Siemens SIP"),
            it("file-sw-version", "1.4.9.0"),
            it("file-priority", "normal"),
        ),
    ),
    "p060-server-writeitems-wbm-certificate.xml": (
        "BB0DBC18D7B8A34BA3DB8295BD5B29D3",
        "WriteItems",
        (it("wbm-server-certificate", "[PKCS#12 data, base64 encoded]"),),
    ),
    "p060-server-readitems-wbm-certificate-info.xml": (
        "43C308AE8D03F14392F565075A9922FB",
        "ReadItems",
        (it("wbm-server-certificate-info"),),
    ),
    "p064-server-writeitems-secure-mode-nopin.xml": (
        "58D4EE11C844865CAF0E9AA11ED2856F",
        "WriteItems",
        (
            it("goto-secure-mode", "nopin"),
            it("dls-client-certificate", "....."),
            it("dls-server-ca", "-----BEGIN CERTIFICATE-----.....", 0),
            it("dls-server-ca", "-----BEGIN CERTIFICATE-----.....", 1),
            it("dls-secure-port", "18444"),
        ),
    ),
    "p067-server-writeitems-secure-mode-pin.xml": (
        "58D4EE11C844865CAF0E9AA11ED2856F",
        "WriteItems",
        (
            it("goto-secure-mode", "pin"),
            it("secure-mode-data", "[packed, encrypted, Base64-encoded data]"),
            it("max-pin-retries", "3"),
        ),
    ),
    "p068-server-readitems-bootstrapping-tan.xml": (
        "58D4EE11C844865CAF0E9AA11ED2856F",
        "ReadItems",
        (it("bootstrapping-tan"),),
    ),
    "p070-server-getnextfragment.xml": ("B0151B36FE9CEEA0F667FF3A208AC994", "GetNextFragment", ()),
    "p076-server-cleanup-send-solicited.xml": (
        "EB2C4CDF45D86E548CCD6F6612B26112",
        "CleanUp",
        (it("send-solicited", "true"),),
    ),
    "p078-server-writeitems-unknown-item.xml": (
        "7FAA6353A4887BBFA14B78370FE99144",
        "WriteItems",
        (it("socketed-headset-mode", "0"),),
    ),
    "p078-server-cleanup.xml": ("CF8CDC3C82D1FC7966B6318537C6E0F6", "CleanUp", ()),
    "p081-server-writeitems-canonical-lookup.xml": (
        "00000000000000000000000000000081",
        "WriteItems",
        (
            it("Canonical-lookup-international-code", "+44561", 6),
            it("Canonical-lookup-local-code", "561", 6),
        ),
    ),
    "p081-server-cleanup.xml": ("C528BD461ABF3247D545E8BBF5A6D809", "CleanUp", ()),
    "p082-server-writeitems-read-only.xml": (
        "71E7F7FF699CE4467956071307E7478F",
        "WriteItems",
        (it("device-type", "OpenStage 75"),),
    ),
    "p083-server-cleanup.xml": ("34459A26CEBCF29550D72BE0ECB655C3", "CleanUp", ()),
    "skeleton-b-server-writeitems.xml": (
        "58D4EE11C844865CAF0E9AA11ED2856F",
        "WriteItems",
        (
            it("sntp-addr", "time.nist.gov"),
            it("dls-server-ca", "-----BEGIN CERTIFICATE-----...", 0),
        ),
    ),
    "spec-2-2-server-writeitems.xml": (
        "9A6439F4E323CDB19283E40459828B56",
        "WriteItems",
        (
            it("sntp-addr", "time.example.com"),
            it("dls-server-ca", "-----BEGIN CERTIFICATE-----...", 0),
        ),
    ),
    "field-no-namespace-writeitems.xml": (
        "C0FFEE00C0FFEE00C0FFEE00C0FFEE00",
        "WriteItems",
        (it("sntp-addr", "time.example.com"),),
    ),
    # provd reads items inside Message only: a factory reset whose ItemList lies outside
    # Message [F: Pentagrid] is a plain Restart, the harmless reading.
    "field-pentagrid-factory-reset-misplaced-itemlist.xml": (
        "C0FFEE00C0FFEE00C0FFEE00C0FFEE01",
        "Restart",
        (),
    ),
    "field-node-dlsmessage-root-case.xml": ("C0FFEE00C0FFEE00C0FFEE00C0FFEE02", "ReadAllItems", ()),
    "field-empty-reasonforcontact.xml": ("C0FFEE00C0FFEE00C0FFEE00C0FFEE03", "CleanUp", ()),
}
