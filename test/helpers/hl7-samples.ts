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

/** Ten more results (blood count, electrolytes), for orders with up to 20 OBX. */
export const MORE_LAB_RESULTS: readonly (readonly [string, string, string, string, string])[] = [
  ['6690-2', '白细胞计数', '6.2', '10*9/L', '3.5-9.5'],
  ['789-8', '红细胞计数', '4.6', '10*12/L', '3.8-5.1'],
  ['718-7', '血红蛋白', '136', 'g/L', '115-150'],
  ['4544-3', '红细胞压积', '41', '%', '35-45'],
  ['777-3', '血小板计数', '231', '10*9/L', '125-350'],
  ['2951-2', '钠', '140', 'mmol/L', '137-147'],
  ['2075-0', '氯', '102', 'mmol/L', '99-110'],
  ['17861-6', '钙', '2.3', 'mmol/L', '2.1-2.7'],
  ['1975-2', '总胆红素', '12', 'umol/L', '0-21'],
  ['2885-2', '总蛋白', '71', 'g/L', '65-85'],
];

/** An ORU^R01 of the county lab with one OBX per lab result (10 by default, up to 20). */
export function countyLabOru(o: { controlId: string; mrn: string; given: string; results?: number }): { controlId: string; bytes: Buffer } {
  const text = [
    `MSH|^~\\&|QSLIS|QSXRMYY|COUNTY-HIE|QS|20250301083000+0800||ORU^R01^ORU_R01|${o.controlId}|P|2.5||||||UNICODE UTF-8`,
    `PID|1||${o.mrn}^^^QSLIS^MR||王^${o.given}||19650312|F`,
    `OBR|1|P${o.controlId}|F${o.controlId}|24331-1^血脂及生化^LN|||20250301073000`,
    ...[...LAB_RESULTS, ...MORE_LAB_RESULTS].slice(0, o.results ?? LAB_RESULTS.length).map(
      ([code, name, value, unit, range], i) => `OBX|${i + 1}|NM|${code}^${name}^LN||${value}|${unit}|${range}|N|||F|||20250301073000`,
    ),
  ].join('\r');
  return { controlId: o.controlId, bytes: Buffer.from(text, 'utf8') };
}
