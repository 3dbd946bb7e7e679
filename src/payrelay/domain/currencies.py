"""The active ISO 4217 currency codes, each with its minor-unit exponent.

A code missing here is no currency payrelay will price anything in: `Money` refuses it, so a
typo (`BRR`) or an invented code (`QQQ`) is a 422 at the API, never a guess at its decimals.

Taken from ISO 4217's list one (current funds and currencies). Left out on purpose: codes
whose minor unit the standard gives as "N.A." (precious metals XAU/XAG/XPD/XPT, the
IMF's XDR, the bond-market units XBA-XBD, XSU, XUA, and the testing and no-currency codes
XTS/XXX), since no payment is made in them; and codes already withdrawn (HRK, CUC, ZWL,
SLL, MRO, STD, VEF, BYR...). Update this table, and nothing else, when ISO amends the list.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["ISO_4217_EXPONENTS"]

_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"  # Chile's Unidad de Fomento, Uruguay's Unidad Previsional
_TWO = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP
BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD
FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD
KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD
NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP
SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED
VES WST XCD XCG YER ZAR ZMW ZWG
"""

ISO_4217_EXPONENTS: MappingProxyType[str, int] = MappingProxyType(
    {
        code: exponent
        for codes, exponent in ((_TWO, 2), (_ZERO, 0), (_THREE, 3), (_FOUR, 4))
        for code in codes.split()
    }
)
"""Code -> decimals of its minor unit: USD 2, JPY 0, KWD 3, CLF 4."""
