"""Static facts for the demo data: makers and models, labs per institute, company
names, people and purposes. Plain data; ``labshare.demo.seed`` combines them."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from labshare.models.enums import Field

DATA_DIR = Path(__file__).resolve().parent / "data"

#: The demo password of every demo account (documented in README.md).
DEMO_PASSWORD = "LabShare-demo-2026"  # noqa: S105 - public demo data
ADMIN_EMAIL = "admin@labshare.demo"
SME_EMAIL = "sme@labshare.demo"
DEMO_EMAIL_SUFFIX = "labshare.demo"


def staff_email(institute_code: str) -> str:
    return f"staff@{institute_code.lower()}.{DEMO_EMAIL_SUFFIX}"


@dataclass(frozen=True)
class InstituteRow:
    code: str
    name_zh: str
    name_en: str
    kind: str
    province_code: str
    province_zh: str
    city_zh: str
    timezone: str


@dataclass(frozen=True)
class InstrumentKind:
    field: Field
    field_zh: str
    name_zh: str
    name_en: str
    measurand: str
    unit: str
    range_min: float
    range_max: float
    accuracy: str
    fee_per_hour: int
    requires_qualification: bool


def load_institutes() -> list[InstituteRow]:
    with (DATA_DIR / "institutes.csv").open(encoding="utf-8", newline="") as fh:
        return [InstituteRow(**row) for row in csv.DictReader(fh)]


def load_instrument_kinds() -> list[InstrumentKind]:
    with (DATA_DIR / "instruments.csv").open(encoding="utf-8", newline="") as fh:
        return [
            InstrumentKind(
                field=Field(row["field"]),
                field_zh=row["field_zh"],
                name_zh=row["name_zh"],
                name_en=row["name_en"],
                measurand=row["measurand"],
                unit=row["unit"],
                range_min=float(row["range_min"]),
                range_max=float(row["range_max"]),
                accuracy=row["accuracy"],
                fee_per_hour=int(row["fee_per_hour_cny"]),
                requires_qualification=row["requires_qualification"] == "yes",
            )
            for row in csv.DictReader(fh)
        ]


FIELD_NAMES: dict[Field, tuple[str, str, str]] = {
    # field: (Chinese lab name, English lab name, asset-number abbreviation)
    Field.GEOMETRIC: ("几何量计量开放实验室", "Geometric Metrology Open Lab", "JH"),
    Field.THERMAL: ("热工计量开放实验室", "Thermal Metrology Open Lab", "RG"),
    Field.MECHANICAL: ("力学计量开放实验室", "Mechanical Metrology Open Lab", "LX"),
    Field.ELECTROMAGNETIC: ("电磁计量开放实验室", "Electromagnetic Metrology Open Lab", "DC"),
    Field.RADIO: ("无线电计量开放实验室", "Radio Metrology Open Lab", "WX"),
    Field.TIME_FREQUENCY: ("时间频率计量开放实验室", "Time and Frequency Open Lab", "SP"),
    Field.IONIZING_RADIATION: (
        "电离辐射计量开放实验室",
        "Ionizing Radiation Metrology Open Lab",
        "DL",
    ),
    Field.CHEMICAL: ("化学计量开放实验室", "Chemical Metrology Open Lab", "HX"),
    Field.ACOUSTIC: ("声学计量开放实验室", "Acoustic Metrology Open Lab", "SX"),
    Field.OPTICAL: ("光学计量开放实验室", "Optical Metrology Open Lab", "GX"),
}

#: Which fields each institute opens a lab for (40 labs in all).
LAB_FIELDS: dict[str, list[Field]] = {
    "NIM": [
        Field.GEOMETRIC,
        Field.THERMAL,
        Field.MECHANICAL,
        Field.ELECTROMAGNETIC,
        Field.RADIO,
        Field.TIME_FREQUENCY,
        Field.IONIZING_RADIATION,
        Field.ACOUSTIC,
    ],
    "SIMT": [Field.GEOMETRIC, Field.ELECTROMAGNETIC, Field.CHEMICAL, Field.OPTICAL],
    "JSIM": [Field.MECHANICAL, Field.THERMAL, Field.RADIO],
    "ZJIM": [Field.MECHANICAL, Field.ELECTROMAGNETIC, Field.OPTICAL],
    "FJIM": [Field.THERMAL, Field.CHEMICAL],
    "XMIM": [Field.GEOMETRIC, Field.TIME_FREQUENCY],
    "SDIM": [Field.MECHANICAL, Field.IONIZING_RADIATION, Field.ACOUSTIC],
    "NAMC": [Field.GEOMETRIC, Field.MECHANICAL],
    "HBIMT": [Field.THERMAL, Field.ELECTROMAGNETIC, Field.RADIO],
    "GDIM": [Field.GEOMETRIC, Field.ELECTROMAGNETIC, Field.CHEMICAL, Field.OPTICAL],
    "GXSC": [Field.CHEMICAL, Field.MECHANICAL],
    "SXIM": [Field.TIME_FREQUENCY, Field.THERMAL],
    "HLJIM": [Field.THERMAL, Field.MECHANICAL],
}

#: (manufacturer, model) options per instrument kind, by English name.
MAKERS: dict[str, list[tuple[str, str]]] = {
    "Coordinate measuring machine": [
        ("Hexagon 海克斯康", "Global S 12.10.08"),
        ("Carl Zeiss 蔡司", "CONTURA 12/10/8"),
    ],
    "Laser interferometer": [("Renishaw 雷尼绍", "XL-80"), ("Keysight 是德科技", "5530")],
    "Vision measuring system": [("Mitutoyo 三丰", "QV-X404"), ("天准科技", "VMU 432")],
    "Surface roughness tester": [
        ("Taylor Hobson", "Form Talysurf PGI"),
        ("Mitutoyo 三丰", "SJ-410"),
    ],
    "Gauge block comparator": [("Mahr 马尔", "826 Z"), ("TESA", "UPC")],
    "Roundness measuring instrument": [("Taylor Hobson", "Talyrond 565"), ("Mahr 马尔", "MMQ 400")],
    "Universal measuring microscope": [("新天光电", "19JPC-V"), ("Mitutoyo 三丰", "MF-B2017")],
    "Standard platinum resistance thermometer": [("Fluke 福禄克", "5681"), ("云南大方", "WZPB-2")],
    "Thermostatic oil bath": [("Fluke 福禄克", "7080"), ("华中电子", "HWY-300")],
    "Low-temperature thermostatic bath": [("Fluke 福禄克", "7381"), ("长流仪器", "CL-80")],
    "Thermocouple calibration furnace": [("Fluke 福禄克", "9118A"), ("康斯特", "ConST 650")],
    "Blackbody radiation source": [("Fluke 福禄克", "4181"), ("ISOTECH", "988")],
    "Temperature and humidity calibration chamber": [
        ("Thunder Scientific", "2500"),
        ("Fluke 福禄克", "5128A"),
    ],
    "Piston gauge (dead-weight tester)": [("Fluke 福禄克", "PG7601"), ("西安仪表", "YS-600")],
    "Digital pressure calibrator": [("康斯特", "ConST 811"), ("Fluke 福禄克", "2271A")],
    "Low-pressure calibrator": [("Fluke 福禄克", "7250LP"), ("康斯特", "ConST 681")],
    "Force standard machine": [("中航电测", "FSM-1000K"), ("GTM", "Series K")],
    "Torque standard machine": [("Schenck 申克", "DMS-5000"), ("长春机械院", "NJB-5000")],
    "Electronic balance": [
        ("Mettler Toledo 梅特勒-托利多", "XPR226"),
        ("Sartorius 赛多利斯", "Cubis II"),
    ],
    "Class E1 weight set": [
        ("Mettler Toledo 梅特勒-托利多", "E1 1 mg–1 kg"),
        ("Häfner", "E1-1000"),
    ],
    "Universal testing machine": [("Instron 英斯特朗", "5985"), ("三思纵横", "UTM5305")],
    "Liquid flow standard facility": [
        ("开封仪表", "LFS-200"),
        ("Emerson 艾默生", "Micro Motion CMF"),
    ],
    "Bell prover gas flow standard": [("苍南仪表", "BP-500"), ("DH Instruments", "molbloc-L")],
    "Tachometer calibrator": [("北京天地", "ZJ-30000"), ("Monarch", "CAL-30K")],
    "Vibration calibration system": [("Spektra", "CS18"), ("B&K 必凯", "3629")],
    "Multifunction calibrator": [("Fluke 福禄克", "5730A"), ("Transmille", "8100")],
    "8.5-digit digital multimeter": [("Keysight 是德科技", "3458A"), ("Fluke 福禄克", "8588A")],
    "Standard resistor set": [("Fluke 福禄克", "742A"), ("IET Labs", "SRL")],
    "Electricity meter test bench": [("科陆电子", "CL3000"), ("MTE", "PTS 400.3")],
    "Insulation resistance tester calibrator": [("Fluke 福禄克", "5320A"), ("普源精电", "IRC-10G")],
    "High-voltage standard divider": [("Ross Engineering", "VD200"), ("武高所", "FRC-200")],
    "Spectrum analyzer": [
        ("Keysight 是德科技", "N9030B PXA"),
        ("Rohde & Schwarz 罗德与施瓦茨", "FSW26"),
    ],
    "Vector network analyzer": [
        ("Keysight 是德科技", "N5227B"),
        ("Rohde & Schwarz 罗德与施瓦茨", "ZNA67"),
    ],
    "RF power meter": [
        ("Rohde & Schwarz 罗德与施瓦茨", "NRX + NRP18S"),
        ("Keysight 是德科技", "N1914A"),
    ],
    "Signal generator": [
        ("Rohde & Schwarz 罗德与施瓦茨", "SMA100B"),
        ("Keysight 是德科技", "E8257D"),
    ],
    "EMC semi-anechoic chamber": [("ETS-Lindgren", "FACT 3"), ("常州三维", "SAC-3")],
    "Caesium atomic clock": [("Microchip 微芯", "5071A"), ("Oscilloquartz", "OSA 3230B")],
    "Universal frequency counter": [("Keysight 是德科技", "53230A"), ("Pendulum", "CNT-91")],
    "Time interval analyzer": [
        ("Stanford Research Systems", "SR620"),
        ("Keysight 是德科技", "53230A"),
    ],
    "Stopwatch calibrator": [("成都天奥", "TA-MJ2"), ("华测时频", "SJ-2000")],
    "GNSS-disciplined rubidium oscillator": [
        ("成都天奥", "XHTF1031"),
        ("Microchip 微芯", "SyncServer S650"),
    ],
    "Dose-rate meter calibration facility (Cs-137)": [
        ("中核控制", "GBZ-137"),
        ("Hopewell Designs", "G10-1-120"),
    ],
    "Diagnostic X-ray reference radiation": [("PTW", "X-RAD 320"), ("Hopewell Designs", "X80-225")],
    "Surface contamination meter calibrator": [
        ("中核控制", "BMD-100"),
        ("Eckert & Ziegler", "Type 7100"),
    ],
    "Radon chamber": [("南华大学", "HD-RC-1"), ("Genitron", "RC-20")],
    "Gas chromatograph": [("Agilent 安捷伦", "8890"), ("Shimadzu 岛津", "GC-2030")],
    "UV-Vis spectrophotometer": [("Shimadzu 岛津", "UV-2600i"), ("Agilent 安捷伦", "Cary 3500")],
    "pH meter calibrator": [
        ("上海雷磁", "PHS-3E-CAL"),
        ("Mettler Toledo 梅特勒-托利多", "SevenExcellence"),
    ],
    "Conductivity meter calibrator": [("上海雷磁", "DDS-CAL"), ("Metrohm 瑞士万通", "914")],
    "Atomic absorption spectrometer": [
        ("PerkinElmer 珀金埃尔默", "PinAAcle 900T"),
        ("Thermo 赛默飞", "iCE 3500"),
    ],
    "Karl Fischer moisture titrator": [
        ("Metrohm 瑞士万通", "917 Coulometer"),
        ("Mettler Toledo 梅特勒-托利多", "C30S"),
    ],
    "Sound calibrator": [("B&K 必凯", "4231"), ("杭州爱华", "AWA6022A")],
    "Sound level meter test system": [("B&K 必凯", "3630-C"), ("杭州爱华", "AWA6290T")],
    "Full anechoic room": [("ETS-Lindgren", "FAR-6"), ("杭州爱华", "AWA-QXS")],
    "Ultrasound power meter": [
        ("Ohmic Instruments", "UPM-DT-1000PA"),
        ("Precision Acoustics", "RFB"),
    ],
    "Illuminance meter calibration bench": [("远方光电", "EVERFINE GD-2"), ("LMT", "L 1009")],
    "Spectroradiometer": [("Konica Minolta 柯尼卡美能达", "CS-2000A"), ("远方光电", "SPIC-300")],
    "Optical power meter calibrator": [("Keysight 是德科技", "8163B"), ("EXFO", "FPM-602")],
    "Luminance meter": [("Konica Minolta 柯尼卡美能达", "LS-160"), ("远方光电", "LM-3")],
    "Laser power meter": [("Ophir", "Nova II + 30A-BB"), ("Thorlabs", "PM400")],
}

#: What SMEs come to measure, per field.
PURPOSES: dict[Field, list[str]] = {
    Field.GEOMETRIC: [
        "汽车变速箱壳体关键尺寸检测",
        "精密轴承内外圈圆度测量",
        "注塑模具型腔尺寸复核",
        "数控机床定位精度检测",
        "量块比对校准",
    ],
    Field.THERMAL: [
        "工业铂电阻温度传感器校准",
        "热处理炉用热电偶校准",
        "红外测温仪示值校准",
        "冷链温湿度记录仪校准",
    ],
    Field.MECHANICAL: [
        "压力变送器校准",
        "精密压力表检定",
        "扭矩扳手校准",
        "称重传感器力值校准",
        "电子秤与砝码检定",
        "钢材拉伸性能测试",
        "流量计实流标定",
    ],
    Field.ELECTROMAGNETIC: [
        "数字多用表校准",
        "电能表检定",
        "绝缘电阻表校准",
        "电阻箱校准",
    ],
    Field.RADIO: [
        "5G 模组射频指标测试",
        "信号源频率与功率校准",
        "天线驻波比测试",
        "产品电磁兼容预测试",
    ],
    Field.TIME_FREQUENCY: [
        "频率计校准",
        "晶振频率准确度测试",
        "秒表与计时器检定",
        "时间同步设备测试",
    ],
    Field.IONIZING_RADIATION: [
        "辐射防护仪表校准",
        "医用 X 射线剂量仪校准",
        "表面污染监测仪检定",
    ],
    Field.CHEMICAL: [
        "食品中重金属含量检测方法验证",
        "酸度计检定",
        "电导率仪校准",
        "原料水分含量测定",
        "挥发性有机物含量分析",
    ],
    Field.ACOUSTIC: [
        "声级计检定",
        "声校准器校准",
        "家电产品噪声测试",
    ],
    Field.OPTICAL: [
        "LED 灯具照度与光谱测试",
        "照度计校准",
        "光功率计校准",
        "显示屏亮度均匀性测试",
    ],
}

SAMPLES = [
    "2 件",
    "3 件样品",
    "5 只传感器",
    "1 台",
    "8 只压力表",
    "10 件零件",
    "4 块",
    "6 只仪表",
]

REJECT_REASONS = [
    "该时段设备需进行期间核查 (interim check scheduled)",
    "样品超出设备测量范围 (sample outside the instrument's range)",
    "请先完成设备操作培训 (training required first)",
    "申请信息不完整，请补充样品说明 (incomplete request)",
]

USAGE_NOTES = [
    "按 JJF 规范完成校准，出具校准证书",
    "现场指导企业人员操作，数据已交付",
    "发现示值偏差，已给出调整建议",
    "完成测量，企业质量问题已定位",
    "",
]

#: Cities for SMEs: (administrative division code, province, city)
SME_CITIES = [
    ("320500", "江苏省", "苏州"),
    ("320200", "江苏省", "无锡"),
    ("320400", "江苏省", "常州"),
    ("330200", "浙江省", "宁波"),
    ("330100", "浙江省", "杭州"),
    ("330300", "浙江省", "温州"),
    ("441900", "广东省", "东莞"),
    ("440300", "广东省", "深圳"),
    ("440600", "广东省", "佛山"),
    ("370200", "山东省", "青岛"),
    ("370100", "山东省", "济南"),
    ("420100", "湖北省", "武汉"),
    ("610100", "陕西省", "西安"),
    ("410100", "河南省", "郑州"),
    ("350200", "福建省", "厦门"),
    ("350500", "福建省", "泉州"),
    ("230100", "黑龙江省", "哈尔滨"),
    ("450100", "广西壮族自治区", "南宁"),
    ("310115", "上海市", "上海"),
    ("110108", "北京市", "北京"),
]

#: Trade-name syllables (Chinese, pinyin for e-mail domains).
BRANDS = [
    ("恒锐", "hengrui"),
    ("精诚", "jingcheng"),
    ("华拓", "huatuo"),
    ("鼎力", "dingli"),
    ("宏达", "hongda"),
    ("新锐", "xinrui"),
    ("博远", "boyuan"),
    ("中联", "zhonglian"),
    ("天衡", "tianheng"),
    ("瑞科", "ruike"),
    ("金川", "jinchuan"),
    ("同创", "tongchuang"),
    ("永信", "yongxin"),
    ("德润", "derun"),
    ("联测", "lianche"),
    ("海川", "haichuan"),
    ("昊天", "haotian"),
    ("卓远", "zhuoyuan"),
    ("启明", "qiming"),
    ("万通", "wantong"),
    ("正泰", "zhengtai"),
    ("华晟", "huasheng"),
    ("力拓", "lituo"),
    ("明辉", "minghui"),
    ("嘉禾", "jiahe"),
]

#: (industry shown, company-name suffix)
INDUSTRIES = [
    ("汽车零部件 Automotive parts", "汽车零部件有限公司"),
    ("精密机械 Precision machinery", "精密机械有限公司"),
    ("电子信息 Electronics", "电子科技有限公司"),
    ("仪器仪表 Instruments", "仪器仪表有限公司"),
    ("新材料 Advanced materials", "新材料科技有限公司"),
    ("医疗器械 Medical devices", "医疗器械有限公司"),
    ("食品加工 Food processing", "食品有限公司"),
    ("模具制造 Mould making", "模具有限公司"),
    ("传感器 Sensors", "传感技术有限公司"),
    ("光电 Optoelectronics", "光电科技有限公司"),
    ("化工 Chemicals", "化工有限公司"),
    ("磨料磨具 Abrasives", "磨料磨具有限公司"),
    ("家用电器 Household appliances", "电器有限公司"),
    ("通信设备 Telecom equipment", "通信技术有限公司"),
]

SURNAMES = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
]

GIVEN_NAMES = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("磊", "lei"),
    ("强", "qiang"),
    ("洋", "yang"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀英", "xiuying"),
    ("建华", "jianhua"),
    ("志强", "zhiqiang"),
    ("海燕", "haiyan"),
    ("晓东", "xiaodong"),
]
