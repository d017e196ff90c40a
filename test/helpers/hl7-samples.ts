/**
 * Sample HL7 v2 traffic of the demo county hospital's lab (sender QSLIS/QSXRMYY, UTF-8), shared
 * by the MLLP load test and the MLLP benchmark so both measure the same message.
 */

/** Ten common chemistry results: LOINC, Chinese name, value, unit, reference range. */
export const LAB_RESULTS: readonly (readonly [string, string, string, string, string])[] = [
  ['2345-7', '葡萄糖', '5.6', 'mmol/L', '3.9-6.1'],
  ['2093-3', '总胆固醇', '4.8', 'mmol/L', '2.8-5.2'],
  ['2571-8', '甘油三酯', '1.3', 'mmol/L', '0.5-1.7'],
  ['2085-9', '高密度脂蛋白胆固醇', '1.2', 'mmol/L', '1.0-1.9'],
  ['13457-7', '低密度脂蛋白胆固醇', '2.9', 'mmol/L', '1.5-3.4'],
  ['2160-0', '肌酐', '78', 'umol/L', '57-111'],
  ['3094-0', '尿素氮', '5.1', 'mmol/L', '2.9-8.2'],
  ['1742-6', '丙氨酸氨基转移酶', '22', 'U/L', '9-50'],
  ['1920-8', '天门冬氨酸氨基转移酶', '25', 'U/L', '15-40'],
  ['2823-3', '钾', '4.1', 'mmol/L', '3.5-5.3'],
];

/** An ORU^R01 of the county lab with one OBX per lab result (10 by default). */
export function countyLabOru(o: { controlId: string; mrn: string; given: string; results?: number }): { controlId: string; bytes: Buffer } {
  const text = [
    `MSH|^~\\&|QSLIS|QSXRMYY|COUNTY-HIE|QS|20250301083000+0800||ORU^R01^ORU_R01|${o.controlId}|P|2.5||||||UNICODE UTF-8`,
    `PID|1||${o.mrn}^^^QSLIS^MR||王^${o.given}||19650312|F`,
    `OBR|1|P${o.controlId}|F${o.controlId}|24331-1^血脂及生化^LN|||20250301073000`,
    ...LAB_RESULTS.slice(0, o.results ?? LAB_RESULTS.length).map(
      ([code, name, value, unit, range], i) => `OBX|${i + 1}|NM|${code}^${name}^LN||${value}|${unit}|${range}|N|||F|||20250301073000`,
    ),
  ].join('\r');
  return { controlId: o.controlId, bytes: Buffer.from(text, 'utf8') };
}
